"""The device-mismatch benchmark: how much of the accuracy lost on unseen recording devices a remedy wins back.

Protocol (as in Table 4 of "Spectrum Correction: Acoustic Scene Classification with Mismatched Recording
Devices", Table 2 of the DCASE 2019 task 1B report on device distortion as an additive constant in log-mel
features and Table 2 of "Unified Microphone Conversion"), on any corpus and any impulse-response folder:

1. **Devices.** The *reference* device is the corpus's own recordings (or a named impulse response). Impulse
   responses become simulated devices (:func:`plan_devices`): a few *seen* devices contribute a small fraction
   of the training clips; *unseen* devices appear only in the test set. Every test clip is scored once per
   device, so the devices are compared on the same content.
2. **Calibration.** Remedies that need a device's statistics (spectrum correction, per-device standardization)
   take them from the device's training clips when it has some, and otherwise from ``calibration_clips``
   unlabeled clips of that device drawn from the *training* split: never from the clips being scored. In the
   ``adapt`` track (:data:`TRACKS`) the unseen devices are known ones: each records ``adapt_clips`` unlabeled
   clips set aside from the training split (never trained on, never test clips), which are then its
   calibration clips; recipe ``known-aug`` augments towards them.
3. **Recipes.** A recipe is a named remedy (:data:`RECIPES`); ``a+b`` composes remedies, ``name:ARG`` gives one
   its argument. One classifier (the Spectrum Correction paper's CNN) is trained per recipe and seed;
   ``baseline`` is the plain log-mel pipeline and ``ideal`` trains with every device (the upper bound).
4. **Scores.** Accuracy and macro-F1 per device, means over seen and unseen devices, the device gap (reference
   minus the others' mean) and the gap closed, ``(recipe - baseline) / (ideal - baseline)`` on unseen devices;
   mean and standard deviation over seeds.

The work is split by job: :mod:`~micmatch.bench.plan` (devices), :mod:`~micmatch.bench.data` (settings and
clips), :mod:`~micmatch.bench.recipes` (the recipe language and registry), :mod:`~micmatch.bench.fitting`
(fitting the states of fitted steps), :mod:`~micmatch.bench.pipeline` (the torch pipeline),
:mod:`~micmatch.bench.run` (training and scoring) and :mod:`~micmatch.bench.report` (tables, JSON, chart). This
module gathers their public names.
"""

from __future__ import annotations

from micmatch.bench.data import TRACKS, MismatchConfig, MismatchData, prepare_data
from micmatch.bench.plan import ORIGINAL, DevicePlan, SimDevice, check_disjoint, plan_devices
from micmatch.bench.recipes import RECIPES, STEPS, Recipe, Step, compose, parse_recipe, register_recipe, register_step
from micmatch.bench.report import MismatchResult, load_result, merge_results, summarize, to_markdown, write_results
from micmatch.bench.run import run_benchmark, run_recipe

__all__ = ["DevicePlan", "MismatchConfig", "MismatchData", "MismatchResult", "ORIGINAL", "RECIPES", "Recipe",
           "STEPS", "SimDevice", "Step", "TRACKS", "check_disjoint", "compose", "load_result", "merge_results", "parse_recipe",
           "plan_devices", "prepare_data", "register_recipe", "register_step", "run_benchmark", "run_recipe",
           "summarize", "to_markdown", "write_results"]
