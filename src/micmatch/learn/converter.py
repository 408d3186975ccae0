"""Old home of the device converter, kept for one release (remove it in the next).

The converter now lives in :mod:`micmatch.learn.converter_model` (networks, file format),
:mod:`micmatch.learn.converter_train` (training, presets, folders), :mod:`micmatch.learn.converter_augment` (the
augmentation) and :mod:`micmatch.domains` (simulated device domains, numpy only).
"""

from micmatch.domains import REFERENCE_DOMAIN, simulate_domains
from micmatch.learn.converter_augment import ConverterAugment
from micmatch.learn.converter_model import NORMS, Converter, ConverterConfig, FiLMEncoder, PatchDiscriminator
from micmatch.learn.converter_train import (
    DISCRIMINATORS,
    PRESETS,
    ConverterTrainConfig,
    HistoryBuffer,
    Preset,
    train_converter,
    train_converter_from_folder,
)
from micmatch.learn.engine import count_parameters

__all__ = ["DISCRIMINATORS", "NORMS", "PRESETS", "REFERENCE_DOMAIN", "Converter", "ConverterAugment",
           "ConverterConfig", "ConverterTrainConfig", "FiLMEncoder", "HistoryBuffer", "PatchDiscriminator", "Preset",
           "count_parameters", "simulate_domains", "train_converter", "train_converter_from_folder"]
