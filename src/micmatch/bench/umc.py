"""The device converter in the mismatch benchmark (recipes ``umc`` and ``umc:CONVERTER``): what is benchmark-only.

``umc`` is the registry entry of the same name, fitted like every fitted entry (:mod:`micmatch.bench.fitting`):
a converter trained on the reference device's training clips recorded through chains drawn with the
benchmark's *augmentation* impulse responses, never through a test device. ``umc:CONVERTER`` loads one trained
with ``micmatch train converter``; :func:`check_converter` refuses it when it was trained on a device the
benchmark tests, or on other log-mel settings. Either way the converter becomes the entry's augmentation, whose
targets are the band dB vectors of the augmentation impulse responses (half of the converted items), synthetic
differences taking the other half.
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
    overlap = sorted(tested & converter_devices(converter))
    if overlap:
        raise CorpusError(f"umc:{path}: the converter was trained on test device(s) {', '.join(overlap)}; train it "
                          "on impulse responses that the benchmark does not test")


def converter_info(converter) -> dict:
    """What results.json records of a converter trained in the run."""
    return {"train_seconds": round(converter.info.get("train_seconds", 0.0), 1),
            "last_epoch": (converter.info.get("history") or [None])[-1],
            "devices": sorted(converter.info.get("simulated_devices") or {})}


__all__ = ["check_converter", "converter_devices", "converter_info"]
