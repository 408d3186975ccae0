"""The conditioning of a device converter: the frequency-response difference between a target and a source
device, as one value per mel band (dB) on the classifier's own mel bands.

Unified Microphone Conversion ("Unified Microphone Conversion: Many-to-Many Device Mapping via Feature-wise Linear
Modulation") conditions its generator on ``response(target) - response(source)`` expressed as log-mel spectra.
Here a device's *band response* is its magnitude response averaged (in power) through each triangle of the mel
filterbank of a :class:`~micmatch.features.LogMelConfig` (:func:`micmatch.features.band_gain_db`), so a flat gain
``k`` gives ``20 * log10(k)`` in every band and the difference of two band responses is the per-band offset that
the target device adds to log-mel features relative to the source.

Sources of responses, all reduced to ``(n_mels,)`` dB vectors:

* a responses JSON (:class:`~micmatch.response.ResponseSet`, from ``micmatch profile``, ``pair`` or ``measure``):
  :func:`responses_difference`;
* impulse responses (files, :class:`~micmatch.simulate.ImpulseResponse` or arrays): :func:`ir_band_response`,
  :func:`ir_difference`;
* the linear part of a drawn recording chain (IR and band limits): :func:`device_chain_band_response`;
* synthetic random differences (:func:`micmatch.augment.draw_synthetic_response`): :func:`synthetic_differences`.

numpy and scipy only, so it imports without torch; its consumer is the device converter
(:mod:`micmatch.learn.converter_model`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import scipy.signal

from micmatch import augment
from micmatch.errors import ConfigMismatchError, ParameterError, UnknownDeviceError
from micmatch.features import LogMelConfig, band_gain_db
from micmatch.response import ResponseSet
from micmatch.simulate import ImpulseResponse, Section, _sections_to_sos, load_ir

#: Clamp (dB) of every band response and difference: a band that a device all but removes (below a high-pass
#: corner, above a low-pass) reads at most 60 dB down, so one dead band does not dominate the conditioning.
MAX_BAND_DB = 60.0
#: Floor of the linear magnitude before the log (-240 dB), far below the clamp.
_MIN_MAGNITUDE = 1e-12


def _clamp(values: np.ndarray) -> np.ndarray:
    return np.clip(values, -MAX_BAND_DB, MAX_BAND_DB)


def ir_band_response(ir: ImpulseResponse | np.ndarray | str | os.PathLike, *, config: LogMelConfig) -> np.ndarray:
    """Band response (dB per mel band) of an impulse response: its magnitude averaged through each mel band.

    Parameters
    ----------
    ir : ImpulseResponse, np.ndarray [shape=(n_taps,)], or path
        Arrays are taken at ``config.sample_rate``; files are loaded (and resampled) at that rate, unit-energy
        normalised as :func:`micmatch.simulate.load_ir` does. An :class:`ImpulseResponse` must be at that rate.
    config : LogMelConfig
        The features' settings: the mel bands and the sample rate.

    Returns
    -------
    np.ndarray [shape=(config.n_mels,)], dB, clamped to +-:data:`MAX_BAND_DB`.

    Notes
    -----
    The magnitude is the FFT of the whole response (zero-padded to at least ``config.n_fft`` and a power of two),
    so delay does not matter and no window truncates a long tail.
    """
    if isinstance(ir, (str, os.PathLike)):
        ir = load_ir(ir, config.sample_rate)
    if isinstance(ir, ImpulseResponse):
        if ir.sample_rate != config.sample_rate:
            raise ConfigMismatchError(f"impulse response {ir.name!r} is at {ir.sample_rate} Hz but the features at "
                                      f"{config.sample_rate} Hz; load it with load_ir(path, {config.sample_rate})")
        h = ir.ir
    else:
        h = np.asarray(ir, dtype=np.float64)
    if h.ndim != 1 or h.size == 0 or not np.isfinite(h).all():
        raise ParameterError(f"impulse response must be a finite 1-D array of taps, got shape {h.shape}")
    if not np.any(h):
        raise ParameterError("impulse response is all zeros")
    n_fft = max(config.n_fft, 1 << int(np.ceil(np.log2(max(h.size, 2)))))
    gain_db = 20.0 * np.log10(np.maximum(np.abs(np.fft.rfft(h, n=n_fft)), _MIN_MAGNITUDE))
    return _clamp(band_gain_db(gain_db, config.sample_rate, n_fft, config=config))


def ir_difference(target, source=None, *, config: LogMelConfig) -> np.ndarray:
    """``band response(target) - band response(source)``; ``source=None`` is a flat device (the recordings as
    they are). Arguments as for :func:`ir_band_response`. Returns ``(n_mels,)`` dB."""
    diff = ir_band_response(target, config=config)
    if source is not None:
        diff = diff - ir_band_response(source, config=config)
    return _clamp(diff)


def response_band_response(responses: ResponseSet | str | os.PathLike, device: str, *,
                           config: LogMelConfig) -> np.ndarray:
    """Band response (dB per mel band) of one device of a responses file or :class:`ResponseSet`.

    The response must be at the features' sample rate (its own FFT grid is fine: the mel filterbank is rebuilt on
    it).
    """
    rs = responses if isinstance(responses, ResponseSet) else ResponseSet.load(responses)
    if device not in rs:
        raise UnknownDeviceError(f"device {device!r} is not in the responses; known: {', '.join(rs) or 'none'}")
    return _clamp(band_gain_db(rs[device].response_db, rs.config.sample_rate, rs.config.n_fft, config=config))


def responses_difference(responses: ResponseSet | str | os.PathLike, target: str, source: str, *,
                         config: LogMelConfig) -> np.ndarray:
    """``band response(target) - band response(source)`` from a responses file or set: ``(n_mels,)`` dB."""
    rs = responses if isinstance(responses, ResponseSet) else ResponseSet.load(responses)
    return _clamp(response_band_response(rs, target, config=config)
                  - response_band_response(rs, source, config=config))


def all_band_responses(responses: ResponseSet | str | os.PathLike, *, config: LogMelConfig) -> dict[str, np.ndarray]:
    """Band response of every device in a responses file or set, by name."""
    rs = responses if isinstance(responses, ResponseSet) else ResponseSet.load(responses)
    return {name: response_band_response(rs, name, config=config) for name in rs}


def band_limit_band_response(params: Mapping, *, config: LogMelConfig) -> np.ndarray:
    """Band response (dB) of the band limits of a drawn recording chain (:func:`micmatch.simulate.draw_device_chain`).

    The same digital Butterworth magnitudes as :func:`micmatch.simulate.butterworth_band_limit`, averaged through
    the mel bands; ``(n_mels,)`` dB, clamped.
    """
    sections = [Section(kind, float(params[key]["freq_hz"]), order=int(params[key]["order"]))
                for kind, key in (("highpass", "high_pass"), ("lowpass", "low_pass")) if params.get(key)]
    sos = _sections_to_sos(sections, config.sample_rate)
    n_fft = max(config.n_fft, 4096)
    if sos.shape[0] == 0:
        return np.zeros(config.n_mels)
    _, h = scipy.signal.sosfreqz(sos, worN=n_fft // 2 + 1)
    gain_db = 20.0 * np.log10(np.maximum(np.abs(h), _MIN_MAGNITUDE))
    return _clamp(band_gain_db(gain_db, config.sample_rate, n_fft, config=config))


def device_chain_band_response(params: Mapping, *, config: LogMelConfig,
                               ir: ImpulseResponse | np.ndarray | str | os.PathLike | None = None) -> np.ndarray:
    """Band response of the linear, time-invariant part of a drawn recording chain: its IR and its band limits.

    The noise floor, the compressor/AGC, the recording level and the clipper are left out: they are not a fixed
    frequency response (the converter learns them from the recordings). ``ir`` defaults to ``params["ir"]``.

    Returns
    -------
    np.ndarray [shape=(config.n_mels,)], dB.
    """
    if params.get("sample_rate") not in (None, config.sample_rate):
        raise ConfigMismatchError(f"the chain was drawn for {params['sample_rate']} Hz but the features are at "
                                  f"{config.sample_rate} Hz")
    ir = params.get("ir") if ir is None else ir
    out = band_limit_band_response(params, config=config)
    if ir is not None:
        out = out + ir_band_response(ir, config=config)
    return _clamp(out)


def synthetic_differences(params: Mapping, *, config: LogMelConfig) -> np.ndarray:
    """Synthetic response differences drawn by :func:`micmatch.augment.draw_synthetic_response`, at the mel bands:
    ``(batch, n_mels)`` dB (the same curve the synthetic-response augmentation adds to features)."""
    return _clamp(augment.synthetic_response_offsets(params, config))


def draw_synthetic_differences(rng: np.random.Generator, batch_size: int, *, config: LogMelConfig,
                               **options) -> np.ndarray:
    """Draw ``batch_size`` synthetic differences (options of :func:`~micmatch.augment.draw_synthetic_response`)
    and evaluate them at the mel bands: ``(batch_size, n_mels)`` dB."""
    return synthetic_differences(augment.draw_synthetic_response(rng, batch_size, **options), config=config)


__all__ = ["MAX_BAND_DB", "all_band_responses", "band_limit_band_response", "device_chain_band_response",
           "draw_synthetic_differences", "ir_band_response", "ir_difference", "response_band_response",
           "responses_difference", "synthetic_differences"]
