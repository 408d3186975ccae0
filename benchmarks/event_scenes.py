"""Simulated events for the event-mode benchmark: several phones record one sound in one room, with the truth kept.

A scene (all drawn from one seeded generator):

- a **source**: speech (Free Spoken Digit Dataset digits, 8 kHz, concatenated with pauses and resampled; its band
  ends at 4 kHz) or synthetic music (chords of harmonic tones with random onsets and decays, plus a drum-like
  pattern of noise bursts; content up to 20 kHz), rendered at :data:`SCENE_RATE`;
- a **room** (pyroomacoustics image method, shoebox, RT60 drawn; the design value by Sabine's formula, the measured
  one is kept too), one source position and one position per device; or no room (``dry``: every device hears the
  source directly);
- 3 to 8 **devices**: each a measured microphone impulse response (MicIRP) plus a drawn phone chain
  (:func:`micmatch.simulate.draw_device_chain`: band limits, coloured noise floor, compressor or automatic gain
  control, level, soft clipping), its own sample rate (16, 44.1 or 48 kHz), its own clock (drift up to
  ``max_ppm``) and its own start and stop. Device 0 is the reference; device 1 overlaps it at the end; device 2
  overlaps device 1 only (it is linked to the reference only through device 1); the others overlap the reference
  for a drawn part of the event.

The truth of each device: its start on the source's clock, its drift, its direct-sound delay from the source, and
(when asked) the reference device's recording of the same moments: the sound at the device's position through the
reference's impulse response and chain, over the device's span (what the device's stem should sound like).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Rate at which the scene's sound is rendered (Hz); devices record it at their own rates.
SCENE_RATE = 48000
#: Speed of sound (m/s) used by pyroomacoustics.
SPEED_OF_SOUND = 343.0
#: Device sample rates drawn from (Hz); the reference records at one of the two high ones.
RATES = (16000, 44100, 48000)


@dataclass
class Device:
    """One device of a scene.

    ``start_s``: source-clock time of its first sample; its sample ``n`` holds the sound at the device's position
    at source time ``start_s + n / (rate * (1 + drift_ppm 1e-6))``. ``delay_s``: direct-sound travel time from the
    source (0 without a room). ``audio``: its recording (mono, float, at ``rate``).
    """

    name: str
    rate: int
    start_s: float
    duration_s: float
    drift_ppm: float
    delay_s: float
    ir: str
    chain: dict
    audio: np.ndarray = field(repr=False, default=None)

    def emission_time(self, t_local: np.ndarray | float) -> np.ndarray:
        """Source time at which the sound this device recorded at local time ``t_local`` was emitted."""
        return self.start_s + np.asarray(t_local) / (1.0 + self.drift_ppm * 1e-6) - self.delay_s

    def truth_timeline(self, reference: "Device", t_local: np.ndarray | float) -> np.ndarray:
        """Where local time ``t_local`` of this device lies on the event's timeline (the reference's clock, its
        first sample at 0): the reference's local time at which it recorded the same emitted sound."""
        e = self.emission_time(t_local)
        return (e + reference.delay_s - reference.start_s) * (1.0 + reference.drift_ppm * 1e-6)


@dataclass
class Scene:
    source: str
    seconds: float
    rt60_s: float | None
    rt60_measured_s: float | None
    devices: list[Device]
    truth: dict = field(default_factory=dict, repr=False)  # name -> reference-device recording of its moments

    def write(self, folder: Path) -> list[Path]:
        """Each device's recording as 16-bit WAV ``folder/NAME.wav``; the paths, reference first."""
        import soundfile as sf

        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for d in self.devices:
            p = folder / f"{d.name}.wav"
            sf.write(str(p), np.clip(d.audio, -1, 1).astype(np.float32), d.rate, subtype="PCM_16")
            paths.append(p)
        return paths


# ----------------------------------------------------------------------------------------------------------------
# Sources


def speech(rng: np.random.Generator, seconds: float, data: Path) -> np.ndarray:
    """FSDD digits in random order with 0.1-0.7 s pauses, at :data:`SCENE_RATE`, RMS -26 dBFS while speaking."""
    from micmatch.audio import load, resample

    files = sorted((data / "fsdd" / "audio").glob("*.wav"))
    if not files:
        raise FileNotFoundError(f"{data / 'fsdd' / 'audio'}: no FSDD recordings")
    parts, total, need = [], 0, int(seconds * 8000)
    for i in rng.permutation(len(files)):
        x = load(files[i], channels="mix", dtype="float64")[0][0]
        x = x / max(np.sqrt(np.mean(x * x)), 1e-9)
        pause = np.zeros(int(rng.uniform(0.1, 0.7) * 8000))
        parts += [x, pause]
        total += x.size + pause.size
        if total >= need:
            break
    y = np.concatenate(parts)[:need]
    y = resample(y, 8000, SCENE_RATE)
    return y * 10 ** (-26 / 20)


def music(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Synthetic music: chords of three harmonic tones (8 partials, 1/k amplitudes, exponential decay) at random
    onsets, and noise bursts (a kick-like low one and a hi-hat-like high one) on a jittered beat."""
    sr = SCENE_RATE
    n = int(seconds * sr)
    y = np.zeros(n)
    t = 0.0
    while t < seconds:
        root = 110.0 * 2 ** (rng.integers(0, 24) / 12)
        length = rng.uniform(0.4, 1.6)
        m = int(min(length + 1.0, seconds - t) * sr)
        if m <= 0:
            break
        tt = np.arange(m) / sr
        env = np.exp(-tt / rng.uniform(0.3, 1.2)) * np.minimum(tt / 0.01, 1.0)
        chord = np.zeros(m)
        for step in (0, rng.choice([3, 4]), 7):
            f0 = root * 2 ** (step / 12)
            for k in range(1, 9):
                if k * f0 < 0.45 * sr:
                    chord += np.sin(2 * np.pi * k * f0 * tt + rng.uniform(0, 2 * np.pi)) / k
        lo = int(t * sr)
        y[lo : lo + m] += chord * env
        t += length
    beat = 60.0 / rng.uniform(80, 140)
    t = 0.0
    while t < seconds - 0.3:
        lo = int((t + rng.normal(0, 0.01)) * sr)
        if lo >= 0:
            burst = rng.standard_normal(int(0.25 * sr))
            tt = np.arange(burst.size) / sr
            if rng.random() < 0.5:  # low thump
                burst = np.convolve(burst, np.ones(40) / 40, mode="same") * np.exp(-tt / 0.06) * 4.0
            else:  # bright tick
                burst = np.diff(burst, prepend=0.0) * np.exp(-tt / 0.02) * 0.5
            y[lo : lo + burst.size] += burst[: n - lo]
        t += beat / rng.choice([1, 2])
    return y / np.sqrt(np.mean(y * y)) * 10 ** (-22 / 20)


# ----------------------------------------------------------------------------------------------------------------
# Room and devices


def room_irs(rng: np.random.Generator, n_devices: int, rt60_range=(0.2, 0.8)):
    """Room impulse responses from one source to ``n_devices`` positions at :data:`SCENE_RATE`; the drawn RT60,
    the measured one (median over positions), and each position's direct-sound delay (s) from the source."""
    import pyroomacoustics as pra

    dims = rng.uniform([5.0, 4.0, 2.6], [10.0, 8.0, 3.5])
    rt60 = float(rng.uniform(*rt60_range))
    e_abs, max_order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(dims, fs=SCENE_RATE, materials=pra.Material(e_abs), max_order=max_order)
    src = rng.uniform([1.0, 1.0, 1.2], dims - [1.0, 1.0, 1.0])
    room.add_source(src)
    mics = []
    while len(mics) < n_devices:
        p = rng.uniform([0.4, 0.4, 0.8], dims - [0.4, 0.4, 1.0])
        if 1.0 <= np.linalg.norm(p - src) <= 6.0:
            mics.append(p)
    room.add_microphone_array(np.array(mics).T)
    room.compute_rir()
    # pyroomacoustics delays every response by half its fractional-delay filter: removed, so the direct sound
    # arrives after its travel time alone.
    lead = int(pra.constants.get("frac_delay_length")) // 2
    irs = [np.asarray(room.rir[k][0], dtype=np.float64)[lead:] for k in range(n_devices)]
    delays = [float(np.linalg.norm(m - src) / SPEED_OF_SOUND) for m in mics]
    measured = float(np.median(room.measure_rt60()))
    return irs, rt60, measured, delays


def spans(rng: np.random.Generator, n_devices: int, seconds: float) -> list[tuple[float, float]]:
    """Start and stop (source seconds) of each device: the reference from near the start to 70% of the event;
    device 1 from 45% to the end; device 2 from 78% to the end (overlapping only device 1); the others a drawn
    stretch of at least 35% of the event that overlaps the reference by at least 25%."""
    out = [(rng.uniform(0.0, 0.03) * seconds, 0.70 * seconds), (0.45 * seconds, seconds - rng.uniform(0, 0.5)),
           (0.78 * seconds, seconds)]
    for _ in range(3, n_devices):
        start = rng.uniform(0.0, 0.35) * seconds
        out.append((start, min(seconds, start + rng.uniform(0.35, 0.65) * seconds)))
    return out[:n_devices]


def record(sound: np.ndarray, start_s: float, stop_s: float, rate: int, drift_ppm: float, chain: dict,
           ir) -> np.ndarray:
    """A device's recording of ``sound`` (at :data:`SCENE_RATE`, at its position) from ``start_s`` to ``stop_s``:
    its clock ``drift_ppm`` fast (the sound resampled to ``rate * (1 + drift)``), then its chain."""
    import soxr

    from micmatch.simulate import apply_device_chain

    lo, hi = int(round(start_s * SCENE_RATE)), int(round(stop_s * SCENE_RATE))
    x = sound[lo:hi]
    y = soxr.resample(x, SCENE_RATE, rate * (1.0 + drift_ppm * 1e-6), quality="VHQ")
    return apply_device_chain(y, rate, chain, ir=ir)


def make_scene(seed: int, *, seconds: float, n_devices: int, source: str, data: Path, room: bool = True,
               max_ppm: float = 100.0, drifts: list[float] | None = None, with_truth: bool = True,
               rt60_range=(0.2, 0.8), parts_off: tuple[str, ...] = ()) -> Scene:
    """One simulated event (module docstring); ``drifts`` fixes the devices' drifts (ppm) instead of drawing them.
    ``parts_off`` names chain parts left out of every device (and of the truth), e.g. ``("noise", "dynamics")``:
    they are still drawn, so the rest of the scene is the same as with them.

    Raises FileNotFoundError when the speech or the impulse responses are not in ``data``.
    """
    from micmatch.simulate import draw_device_chain, load_ir

    rng = np.random.default_rng(seed)
    ir_files = sorted((data / "micirp" / "ir").glob("*.wav"))
    if not ir_files:
        raise FileNotFoundError(f"{data / 'micirp' / 'ir'}: no microphone impulse responses")
    x = speech(rng, seconds, data) if source == "speech" else music(rng, seconds)
    if room:
        rirs, rt60, measured, delays = room_irs(rng, n_devices, rt60_range)
    else:
        rirs, rt60, measured, delays = [None] * n_devices, None, None, [0.0] * n_devices
    windows = spans(rng, n_devices, seconds)
    devices = []
    chains, mic_irs, sounds = [], [], []
    for k in range(n_devices):
        rate = int(rng.choice(RATES[1:])) if k == 0 else int(rng.choice(RATES))
        ir_path = ir_files[int(rng.integers(len(ir_files)))]
        chain = draw_device_chain(rng, rate, ir=ir_path)
        chain.update({part: None for part in parts_off})
        drift = float(drifts[k]) if drifts is not None else float(rng.uniform(-max_ppm, max_ppm))
        sound = x if rirs[k] is None else _convolve(x, rirs[k])
        start, stop = windows[k]
        start = round(start * SCENE_RATE) / SCENE_RATE
        ir = load_ir(ir_path, rate)
        audio = record(sound, start, stop, rate, drift, chain, ir).astype(np.float32)
        devices.append(Device(f"dev{k}", rate, start, audio.size / rate, drift, delays[k], str(ir_path.name), chain,
                              audio))
        chains.append(chain)
        mic_irs.append(ir_path)
        sounds.append(sound if with_truth else None)
    scene = Scene(source, seconds, rt60, measured, devices)
    if with_truth:
        ref = devices[0]
        ref_ir = load_ir(mic_irs[0], ref.rate)
        for k, d in enumerate(devices[1:], start=1):
            stop = min(seconds, d.start_s + d.duration_s / (1 + d.drift_ppm * 1e-6))
            scene.truth[d.name] = record(sounds[k], d.start_s, stop, ref.rate, 0.0, chains[0], ref_ir)
    return scene


def _convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``x`` through room impulse response ``h``, same length."""
    import scipy.signal

    return scipy.signal.fftconvolve(x, h)[: x.size]


__all__ = ["Device", "Scene", "make_scene", "music", "speech"]
