"""Make audio sound as if a given device recorded it: simulated recordings and random phone/laptop recording chains.

:func:`record_with_ir` records through a measured impulse response with a band limit and a noise floor;
:func:`draw_device_chain` draws a whole recording chain (impulse response, band limits, coloured noise floor,
compressor or automatic gain control, level, soft clipping) as JSON parameters and :func:`apply_device_chain`
replays it exactly. The devices themselves (impulse responses, parametric models, :data:`BUILTIN_DEVICES`) live in
:mod:`micmatch.device_models`; their names are reachable from here too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from micmatch.audio import _check_rate, validate_audio
from micmatch.device_models import (
    BUILTIN_DEVICES, DeviceModel, ImpulseResponse, Section, add_noise_floor, apply_ir, band_limit, builtin_device,
    list_irs, load_ir,
)
from micmatch.device_models import _sections_to_sos, _zero_phase  # noqa: F401  (learn.conditioning imports them here)
from micmatch.errors import AudioError, ParameterError

__all__ = [
    "BUILTIN_DEVICES", "DeviceModel", "ImpulseResponse", "Section", "add_noise_floor", "apply_ir", "band_limit",
    "builtin_device", "list_irs", "load_ir",
]


# ----------------------------------------------------------------------------------------------------------------
# Simulated recordings for benchmarks


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes: tells two impulse-response files with the same content apart from names."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_with_ir(audio: np.ndarray, sample_rate: int, ir: ImpulseResponse, *, noise_floor_db: float | None = None,
                   low_hz: float | None = None, high_hz: float | None = None,
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """``audio`` as if recorded by the device of ``ir``: convolution (delay compensated), band limit, noise floor.

    Parameters
    ----------
    audio : np.ndarray [shape=(..., n_samples)]
        Float waveforms at ``sample_rate``; not modified.
    ir : ImpulseResponse
        Loaded at ``sample_rate`` (``load_ir(path, sample_rate)``).
    noise_floor_db : float, optional
        RMS of added white noise in dB re full scale; needs ``rng``.
    low_hz, high_hz : float, optional
        Band limit (zero-phase Butterworth, see :func:`band_limit`).

    Returns
    -------
    np.ndarray [shape=(..., n_samples)], same dtype as ``audio``.
    """
    y = apply_ir(audio, ir, sample_rate)
    if low_hz or high_hz:
        y = band_limit(y, sample_rate, low_hz=low_hz, high_hz=high_hz)
    if noise_floor_db is not None:
        if rng is None:
            raise AudioError(f"noise_floor_db={noise_floor_db} needs a generator: pass rng=np.random.default_rng(seed)")
        y = add_noise_floor(y, noise_floor_db, rng=rng)
    return y


__all__ += ["file_sha256", "record_with_ir"]


# ----------------------------------------------------------------------------------------------------------------
# Random phone/laptop recording chains: draw the parameters, then apply them (replays exactly)
#
# A chain runs, in order: the device's impulse response (its microphone and acoustics), band limits (the port's
# low cut and the anti-aliasing low-pass), a coloured noise floor (capsule and preamplifier self-noise), a
# feed-forward compressor or automatic gain control (the platform's voice processing), the recording level (the
# gain before the converter) and a soft clipper at the converter's ceiling.

#: Version of the parameter dictionaries written by :func:`draw_device_chain`.
DEVICE_CHAIN_VERSION = 1
#: Length (ms) of the blocks over which the compressor/AGC measures the level; gains are interpolated between
#: block centres, so the gain never steps.
DYNAMICS_BLOCK_MS = 1.0
#: Floor of the mean power (linear, full scale 1) that enters the dynamics' level detector: -120 dBFS.
_MIN_POWER = 1e-12
#: Frequency (Hz) at which a coloured noise floor's spectral slope pivots; below 20 Hz its shape is held flat.
NOISE_PIVOT_HZ = 1000.0
_NOISE_MIN_HZ = 20.0


def _uniform(rng: np.random.Generator, bounds, name: str) -> float:
    lo, hi = (float(v) for v in bounds)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
        raise ParameterError(f"{name}={tuple(bounds)!r} must be a finite (low, high) range with low <= high")
    return float(rng.uniform(lo, hi))


def _log_uniform(rng: np.random.Generator, bounds, name: str) -> float:
    lo, hi = (float(v) for v in bounds)
    if not 0 < lo <= hi:
        raise ParameterError(f"{name}={tuple(bounds)!r} must be a (low, high) range with 0 < low <= high")
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def draw_device_chain(rng: np.random.Generator, sample_rate: int, *, ir: str | os.PathLike | None = None,
                      high_pass_hz: tuple[float, float] = (60.0, 400.0), high_pass_order: tuple[int, int] = (1, 3),
                      low_pass_hz: tuple[float, float] = (3400.0, 16000.0), low_pass_order: tuple[int, int] = (4, 8),
                      noise_floor_db: tuple[float, float] = (-78.0, -54.0),
                      noise_slope_db: tuple[float, float] = (-4.5, 0.0), agc_probability: float = 0.5,
                      threshold_db: tuple[float, float] = (-32.0, -16.0), ratio: tuple[float, float] = (2.0, 6.0),
                      agc_target_db: tuple[float, float] = (-26.0, -16.0), agc_max_gain_db: float = 24.0,
                      level_db: tuple[float, float] = (-6.0, 6.0),
                      clip_ceiling_db: tuple[float, float] = (-3.0, 0.0)) -> dict:
    """Draw the parameters of a realistic phone/laptop recording chain (apply them with :func:`apply_device_chain`).

    Every value is drawn from ``rng`` and stored, so the returned dict (plain JSON types) replays the same
    recording bit for bit, also after a round trip through JSON.

    Parameters
    ----------
    rng : np.random.Generator
        The only source of randomness (the noise floor's own seed is drawn from it too).
    sample_rate : int
        Hz; the low-pass corner is kept below ``0.9 * sample_rate / 2`` (skipped when the whole range is above).
    ir : str or path, optional
        The device's impulse-response file, recorded in the parameters (``None``: no impulse response, or pass
        one to :func:`apply_device_chain` directly).
    high_pass_hz, low_pass_hz : (low, high)
        Ranges of the band-limit corners (Hz), drawn log-uniformly; the filters are zero-phase Butterworth
        magnitudes of an order drawn from ``high_pass_order`` / ``low_pass_order`` (inclusive).
    noise_floor_db : (low, high)
        RMS of the noise floor in dB re full scale (uniform).
    noise_slope_db : (low, high)
        Spectral slope of the noise in dB per octave (0 white, -3 pink), pivoting at :data:`NOISE_PIVOT_HZ`.
    agc_probability : float
        Probability of an automatic gain control (slow, towards ``agc_target_db``, at most ``agc_max_gain_db`` of
        boost) instead of a compressor (fast, ``threshold_db`` and ``ratio``, no make-up gain).
    level_db : (low, high)
        Recording level: gain (dB) before the converter.
    clip_ceiling_db : (low, high)
        The soft clipper's ceiling in dB re full scale: output peaks stay below it.

    Returns
    -------
    dict
        ``{"version", "sample_rate", "ir", "high_pass": {"freq_hz", "order"}, "low_pass": {...} | None,
        "noise": {"level_db", "slope_db_per_octave", "seed"}, "dynamics": {"mode", ...}, "level_db",
        "clip_ceiling_db"}``.
    """
    _check_rate(sample_rate)
    nyquist = sample_rate / 2.0
    if not 0.0 <= agc_probability <= 1.0:
        raise ParameterError(f"agc_probability={agc_probability!r} must be in [0, 1]")
    hp = {"freq_hz": _log_uniform(rng, high_pass_hz, "high_pass_hz"),
          "order": int(rng.integers(high_pass_order[0], high_pass_order[1] + 1))}
    lp_lo, lp_hi = (float(v) for v in low_pass_hz)
    top = 0.9 * nyquist
    lp_corner = _log_uniform(rng, (min(lp_lo, top), min(lp_hi, top)), "low_pass_hz")
    lp_order = int(rng.integers(low_pass_order[0], low_pass_order[1] + 1))
    lp = {"freq_hz": lp_corner, "order": lp_order} if lp_lo < top else None
    noise = {"level_db": _uniform(rng, noise_floor_db, "noise_floor_db"),
             "slope_db_per_octave": _uniform(rng, noise_slope_db, "noise_slope_db"),
             "seed": int(rng.integers(0, 2**31 - 1))}
    if rng.random() < agc_probability:
        dynamics = {"mode": "agc", "target_db": _uniform(rng, agc_target_db, "agc_target_db"),
                    "max_gain_db": float(agc_max_gain_db), "attack_ms": _log_uniform(rng, (20.0, 80.0), "attack"),
                    "release_ms": _log_uniform(rng, (300.0, 1500.0), "release"),
                    "gate_db": -60.0}
    else:
        dynamics = {"mode": "compressor", "threshold_db": _uniform(rng, threshold_db, "threshold_db"),
                    "ratio": _uniform(rng, ratio, "ratio"), "attack_ms": _log_uniform(rng, (1.0, 10.0), "attack"),
                    "release_ms": _log_uniform(rng, (50.0, 300.0), "release")}
    return {
        "version": DEVICE_CHAIN_VERSION,
        "sample_rate": int(sample_rate),
        "ir": None if ir is None else str(ir),
        "high_pass": hp,
        "low_pass": lp,
        "noise": noise,
        "dynamics": dynamics,
        "level_db": _uniform(rng, level_db, "level_db"),
        "clip_ceiling_db": _uniform(rng, clip_ceiling_db, "clip_ceiling_db"),
    }


def butterworth_band_limit(audio: np.ndarray, sample_rate: int, *, high_pass: Mapping | None = None,
                           low_pass: Mapping | None = None) -> np.ndarray:
    """Zero-phase band limit with separate corner and order per side (magnitude of a Butterworth response).

    Parameters
    ----------
    audio : np.ndarray [shape=(..., n_samples)]
    high_pass, low_pass : mapping, optional
        ``{"freq_hz": float, "order": int}``: a digital Butterworth magnitude (``scipy.signal.butter``), applied
        once (not squared). Outside the band it attenuates at least as much as the analog prototype,
        ``10 * log10(1 + (fc / f) ** (2 * order))`` dB (high-pass; ``f / fc`` for the low-pass), about
        ``6 * order`` dB per octave; corners at or above ``0.98 * sample_rate / 2`` are skipped.

    Returns
    -------
    np.ndarray [shape=(..., n_samples)], float64.
    """
    x = validate_audio(audio, sample_rate).astype(np.float64)
    sections = []
    for kind, spec in (("highpass", high_pass), ("lowpass", low_pass)):
        if spec is not None:
            order = int(spec["order"])
            if order < 1:
                raise ParameterError(f"{kind} order={order} must be a positive integer")
            sections.append(Section(kind, float(spec["freq_hz"]), order=order))
    return _zero_phase(_sections_to_sos(sections, sample_rate), x)


def coloured_noise(shape: tuple[int, ...], sample_rate: int, *, level_db: float, slope_db_per_octave: float = 0.0,
                   seed: int) -> np.ndarray:
    """Gaussian noise whose power spectrum falls ``slope_db_per_octave`` per octave, at an exact RMS of ``level_db``.

    The slope pivots at :data:`NOISE_PIVOT_HZ` and is held flat below 20 Hz (so a falling slope does not blow up
    at DC). Each row along the last axis is scaled to RMS ``10 ** (level_db / 20)`` (full scale 1).

    Returns
    -------
    np.ndarray [shape=shape], float64.
    """
    _check_rate(sample_rate)
    n = int(shape[-1])
    white_noise = np.random.default_rng(seed).standard_normal(shape)
    if slope_db_per_octave != 0.0 and n > 1:
        f = np.maximum(np.fft.rfftfreq(n, 1.0 / sample_rate), _NOISE_MIN_HZ)
        amplitude = 10.0 ** (slope_db_per_octave * np.log2(f / NOISE_PIVOT_HZ) / 20.0)
        white_noise = np.fft.irfft(np.fft.rfft(white_noise, axis=-1) * amplitude, n=n, axis=-1)
    rms = np.sqrt(np.mean(white_noise**2, axis=-1, keepdims=True))
    return white_noise / np.maximum(rms, 1e-300) * 10.0 ** (level_db / 20.0)


def dynamics_gain_db(audio: np.ndarray, sample_rate: int, params: Mapping) -> np.ndarray:
    """Gain (dB per sample) of a feed-forward compressor or automatic gain control driven by ``audio``.

    The detector measures the mean power over :data:`DYNAMICS_BLOCK_MS` blocks (channels pooled). The static
    curve gives a target gain per block: ``-(1 - 1 / ratio) * (level - threshold_db)`` above the threshold for a
    compressor (no make-up gain), ``target_db - level`` clamped to ``[-40, max_gain_db]`` for an AGC, which holds
    its gain while the level is below ``gate_db`` (so it never pumps up the noise in pauses). The gain follows its
    target with one-pole smoothing, ``attack_ms`` when the gain falls and ``release_ms`` when it rises, and is
    interpolated linearly between block centres.

    Returns
    -------
    np.ndarray [shape=(n_samples,)], dB.
    """
    x = np.asarray(audio, dtype=np.float64)
    n = x.shape[-1]
    block = max(1, round(sample_rate * DYNAMICS_BLOCK_MS / 1000.0))
    n_blocks = -(-n // block)
    padded = np.zeros(x.shape[:-1] + (n_blocks * block,))
    padded[..., :n] = x
    power = np.mean(padded.reshape(-1, n_blocks, block) ** 2, axis=(0, 2))
    level = 10.0 * np.log10(np.maximum(power, _MIN_POWER))
    mode = params.get("mode")
    if mode == "compressor":
        ratio = float(params["ratio"])
        if ratio < 1.0:
            raise ParameterError(f"compressor ratio={ratio} must be >= 1")
        target = -(1.0 - 1.0 / ratio) * np.maximum(level - float(params["threshold_db"]), 0.0)
        gate = np.zeros(n_blocks, dtype=bool)
    elif mode == "agc":
        target = np.clip(float(params["target_db"]) - level, -40.0, float(params["max_gain_db"]))
        gate = level < float(params["gate_db"])
    else:
        raise ParameterError(f"dynamics mode={mode!r} must be 'compressor' or 'agc'")
    block_s = block / sample_rate
    attack = np.exp(-block_s / (float(params["attack_ms"]) / 1000.0))
    release = np.exp(-block_s / (float(params["release_ms"]) / 1000.0))
    gain = np.empty(n_blocks)
    g = 0.0 if mode == "agc" else target[0]
    for i in range(n_blocks):  # one step per millisecond: cheap, and attack/release need the recursion
        if not gate[i]:
            coef = attack if target[i] < g else release
            g = coef * g + (1.0 - coef) * target[i]
        gain[i] = g
    centres = (np.arange(n_blocks) + 0.5) * block
    return np.interp(np.arange(n), centres, gain)


def soft_clip(audio: np.ndarray, *, ceiling_db: float = 0.0) -> np.ndarray:
    """``c * tanh(audio / c)`` with ``c = 10 ** (ceiling_db / 20)``: peaks stay below ``c``; small values pass
    nearly unchanged (relative error about ``(x / c) ** 2 / 3``)."""
    c = 10.0 ** (float(ceiling_db) / 20.0)
    return c * np.tanh(np.asarray(audio, dtype=np.float64) / c)


def apply_device_chain(audio: np.ndarray, sample_rate: int, params: Mapping, *,
                       ir: ImpulseResponse | np.ndarray | None = None) -> np.ndarray:
    """Record ``audio`` through a chain drawn by :func:`draw_device_chain` (deterministic given ``params``).

    Parameters
    ----------
    audio : np.ndarray [shape=(..., n_samples)]
        Float waveforms at ``sample_rate``, full scale 1; not modified.
    params : mapping
        From :func:`draw_device_chain` (or its JSON). Stages set to ``None`` are skipped (``"ir"``,
        ``"high_pass"``, ``"low_pass"``, ``"noise"``, ``"dynamics"``, ``"clip_ceiling_db"``).
    ir : ImpulseResponse or np.ndarray, optional
        The device's impulse response; when omitted and ``params["ir"]`` names a file, that file is loaded (at
        ``sample_rate``). Convolution is delay compensated (:func:`apply_ir`).

    Returns
    -------
    np.ndarray [shape=(..., n_samples)], same dtype as ``audio``.
    """
    x = validate_audio(audio, sample_rate)
    if params.get("version") != DEVICE_CHAIN_VERSION:
        raise ParameterError(f"device chain version={params.get('version')!r} is not {DEVICE_CHAIN_VERSION}; "
                             "draw the chain with draw_device_chain")
    if int(params.get("sample_rate", sample_rate)) != sample_rate:
        raise ParameterError(f"the chain was drawn for sample_rate={params['sample_rate']} but the audio is at "
                             f"{sample_rate} Hz; draw it again for this rate")
    y = x.astype(np.float64)
    if ir is None and params.get("ir"):
        ir = load_ir(params["ir"], sample_rate)
    if ir is not None:
        y = apply_ir(y, ir, sample_rate)
    if params.get("high_pass") is not None or params.get("low_pass") is not None:
        y = butterworth_band_limit(y, sample_rate, high_pass=params.get("high_pass"), low_pass=params.get("low_pass"))
    noise = params.get("noise")
    if noise is not None:
        y = y + coloured_noise(y.shape, sample_rate, level_db=float(noise["level_db"]),
                               slope_db_per_octave=float(noise["slope_db_per_octave"]), seed=int(noise["seed"]))
    if params.get("dynamics") is not None:
        y = y * 10.0 ** (dynamics_gain_db(y, sample_rate, params["dynamics"]) / 20.0)
    y = y * 10.0 ** (float(params.get("level_db") or 0.0) / 20.0)
    if params.get("clip_ceiling_db") is not None:
        y = soft_clip(y, ceiling_db=float(params["clip_ceiling_db"]))
    return y.astype(x.dtype, copy=False)


__all__ += ["DEVICE_CHAIN_VERSION", "apply_device_chain", "butterworth_band_limit", "coloured_noise",
            "draw_device_chain", "dynamics_gain_db", "soft_clip"]
