"""Simulated multi-device corpora: clips recorded through drawn device chains, each clip on one device.

The training data of the device converter (:mod:`micmatch.learn.converter_train`) when no corpus recorded on
several devices exists: every clip goes through one of ``n_devices`` phone/laptop chains drawn with
:func:`micmatch.simulate.draw_device_chain` (or stays as the ``"reference"``), so the domains are unpaired.
numpy and scipy only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from micmatch.conditioning import device_chain_band_response
from micmatch.errors import ParameterError
from micmatch.features import LogMelConfig, log_mel
from micmatch.simulate import apply_device_chain, draw_device_chain, load_ir

#: Name of the domain of the recordings as they are (a flat response) in simulated corpora.
REFERENCE_DOMAIN = "reference"


def simulate_domains(waves: Sequence[np.ndarray], sample_rate: int, irs: Sequence[str | os.PathLike], *,
                     feature_config: LogMelConfig, n_devices: int, seed: int = 0,
                     include_reference: bool = True, chain_options: Mapping | None = None,
                     progress: bool = True) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict]:
    """Record clips through ``n_devices`` drawn recording chains (one IR each), each clip on one device only.

    Parameters
    ----------
    waves : sequence of np.ndarray [shape=(n_samples,)]
        Mono clips at ``sample_rate``, of any lengths: each clip's features are repeated up to the longest clip
        of its domain (training crops short windows anyway).
    irs : sequence of paths
        Impulse responses to draw devices from (without replacement; ``n_devices <= len(irs)``).
    include_reference : bool
        Keep a share of clips unprocessed as the ``"reference"`` domain (flat response).
    chain_options : mapping, optional
        Options of :func:`micmatch.simulate.draw_device_chain`.

    Returns
    -------
    features : dict of str to np.ndarray [shape=(n_clips, n_mels, n_frames)]
    band_responses : dict of str to np.ndarray [shape=(n_mels,)]
        Each device's IR plus band limits (:func:`~micmatch.conditioning.device_chain_band_response`).
    devices : dict of str to dict
        The drawn chain parameters per device (JSON), so the devices can be recreated exactly.
    """
    if n_devices < 1 or n_devices > len(irs):
        raise ParameterError(f"n_devices={n_devices} must be between 1 and the number of impulse responses "
                             f"({len(irs)})")
    rng = np.random.default_rng([seed, 11])
    chosen = sorted(rng.choice(len(irs), size=n_devices, replace=False).tolist())
    devices = {Path(irs[j]).stem: draw_device_chain(rng, sample_rate, ir=str(irs[j]), **dict(chain_options or {}))
               for j in chosen}
    names = ([REFERENCE_DOMAIN] if include_reference else []) + list(devices)
    assign = rng.integers(0, len(names), size=len(waves))
    features: dict[str, list[np.ndarray]] = {n: [] for n in names}
    from tqdm.auto import tqdm

    for i in tqdm(range(len(waves)), desc="simulate devices", unit="clip", leave=False,
                  disable=None if progress else True):
        name = names[assign[i]]
        x = np.asarray(waves[i], dtype=np.float64)
        if name != REFERENCE_DOMAIN:
            x = apply_device_chain(x, sample_rate, devices[name], ir=load_ir(devices[name]["ir"], sample_rate))
        features[name].append(log_mel(x, sample_rate, config=feature_config).astype(np.float32))
    out, responses = {}, {}
    for name in names:
        clips = features[name]
        if not clips:
            continue
        n_frames = max(c.shape[-1] for c in clips)
        out[name] = np.stack([np.tile(c, (1, -(-n_frames // c.shape[-1])))[:, :n_frames] for c in clips])
        responses[name] = (np.zeros(feature_config.n_mels) if name == REFERENCE_DOMAIN else
                           device_chain_band_response(devices[name], config=feature_config))
    return out, responses, devices


__all__ = ["REFERENCE_DOMAIN", "simulate_domains"]
