"""The device converter in the mismatch benchmark (recipes ``umc`` and ``umc:CONVERTER``): what is benchmark-only.

``umc`` is the registry entry of the same name, fitted like every fitted entry (:mod:`micmatch.bench.fitting`):
a converter trained on the reference device's training clips recorded through chains drawn with the
benchmark's *augmentation* impulse responses, never through a test device. ``umc:CONVERTER`` loads one trained
with ``micmatch train converter``; :func:`check_converter` refuses it when it was trained on a device the
benchmark tests, or on other log-mel settings. Either way the converter becomes the entry's augmentation, whose
targets are the band dB vectors of the augmentation impulse responses (half of the converted items), synthetic
differences taking the other half.

In the ``adapt`` track (:mod:`micmatch.bench.data`), ``umc`` trains as the converter papers did: on the reference
device's training clips and every unseen device's unlabeled adaptation clips, one domain per device, each
conditioned on micmatch's own estimate of it (band shift and noise floor of its adaptation clips against the
reference's clips, :mod:`micmatch.device_estimate`) instead of a recorded impulse response; its augmentation
converts towards those devices (:func:`fit_data` gives the fitting its clips). ``umc-synth`` uses the same
converter with synthetic response differences at classifier-training time (the paper's second variant).
"""

from __future__ import annotations

from pathlib import Path

from micmatch.errors import CorpusError


def converter_devices(converter) -> set[str]:
    """Names of the devices a converter was trained on (its domains and its simulated devices' IR files)."""
    names = {str(n) for n in converter.info.get("domains", [])}
    for name, chain in dict(converter.info.get("simulated_devices") or {}).items():
        names.add(str(name))
        if isinstance(chain, dict) and chain.get("ir"):
            names.add(Path(str(chain["ir"])).stem)
    return names


def check_converter(converter, path: str, data) -> None:
    """Refuse a trained converter for ``umc:PATH`` that does not suit the benchmark ``data``.

    Raises
    ------
    CorpusError
        Other log-mel settings, or a converter trained on a device that the benchmark tests.
    """
    want = data.config.logmel(data.sample_rate)
    have = converter.feature_config
    if have is None or have.to_json() != want.to_json():
        raise CorpusError(f"umc:{path}: the converter was trained on log-mel features {have and have.to_json()} but "
                          f"the benchmark uses {want.to_json()}; train one with these settings (micmatch train "
                          "converter --n-mels ...) or use recipe umc")
    tested = {d.name for d in data.plan.devices if d.path is not None}
    if data.config.track == "adapt":  # the unseen devices are known ones: a converter may have heard them
        tested -= {d.name for d in data.plan.role("unseen")}
    overlap = sorted(tested & converter_devices(converter))
    if overlap:
        raise CorpusError(f"umc:{path}: the converter was trained on test device(s) {', '.join(overlap)}; train it "
                          "on impulse responses that the benchmark does not test")


def fit_data(data, ideal: bool) -> list:
    """``(device index, rows)`` of the clips ``umc`` is fitted on (rows of the training set, or a callable giving
    a device's unlabeled clips): the reference's training clips, and in the ``adapt`` track every unseen device's
    adaptation clips. Never a test clip: those are recorded apart (:meth:`~micmatch.bench.data.MismatchData.test_set`)."""
    import numpy as np

    names = data.plan.names
    ref = names.index(data.plan.reference.name)
    assign = data.assign_ideal if ideal else data.assign
    out: list = [(ref, np.flatnonzero(assign == ref))]
    if data.config.track == "adapt":
        out += [(i, lambda i=i: data.calibration_set(i)) for i, d in enumerate(data.plan.devices)
                if d.role == "unseen"]
    return out


def converter_info(converter) -> dict:
    """What results.json records of a converter trained in the run."""
    info = converter.info
    out = {"train_seconds": round(info.get("train_seconds", 0.0), 1),
           "last_epoch": (info.get("history") or [None])[-1],
           "devices": sorted(info.get("known_devices") or info.get("simulated_devices") or {}),
           "form": converter.config.form, "discriminator": (info.get("train") or {}).get("discriminator")}
    if info.get("known_devices"):
        out["trained_on"] = "reference training clips and the known devices' unlabeled adaptation clips"
    return out


__all__ = ["check_converter", "converter_devices", "converter_info", "fit_data"]
