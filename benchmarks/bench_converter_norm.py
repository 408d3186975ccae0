"""Does the converter's generator learn a device's level and noise floor? Instance norms against none.

With instance norms in the generator the learned part of a conversion keeps a per-band time-mean that the
conditioning cannot move (``tests/test_converter.py``), so a device's long-term level and noise floor can come
only from the per-band offset. This benchmark trains the same small converter twice, ``--norm instance`` (the
paper's) and ``none``, on the same simulated devices, and compares converted clips with the same clips recorded
by the devices.

Material: FSDD clips cut or padded to 1 s, log-mel as in the device-mismatch benchmark (n_fft 256, hop 128, 40
bands). ``--train-clips`` of them spread over the reference and ``--devices`` MicIRP IRs with drawn phone/laptop
chains (:func:`micmatch.domains.simulate_domains`); ``--test-clips`` other clips converted from the
original recordings to each device (conditioning: the device's band response) and recorded by the device's chain.

Errors per device, in dB, averaged over bands: ``mean``: |time- and clip-mean of converted - of recorded| (the
long-term level per band); ``frame``: mean |converted - recorded| over clips, bands and frames. ``offset`` rows
use input + conditioning (no learning).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_converter_norm.py [--epochs 20]
Writes ``benchmarks/results/converter_norm.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine

from micmatch.audio import load
from micmatch.domains import simulate_domains
from micmatch.features import LogMelConfig, log_mel
from micmatch.learn.converter_train import PRESETS, train_converter
from micmatch.simulate import apply_device_chain, list_irs, load_ir

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def clip(path: Path, n: int) -> np.ndarray:
    x, _ = load(path, channels="mix")
    out = np.zeros(n)
    out[: min(n, x.shape[1])] = x[0, :n]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--train-clips", type=int, default=800)
    ap.add_argument("--test-clips", type=int, default=200)
    ap.add_argument("--devices", type=int, default=4)
    ap.add_argument("--learning-rate", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--norms", nargs="+", default=["instance", "none"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    files = sorted((DATA / "fsdd" / "audio").glob("*.wav"))
    if not files:
        raise SystemExit(f"{DATA / 'fsdd'}: FSDD not found")
    pick = np.random.default_rng(0).choice(len(files), args.train_clips + args.test_clips, replace=False)
    waves = [clip(files[i], 8000) for i in pick]
    fcfg = LogMelConfig(sample_rate=8000, n_fft=256, hop_length=128, n_mels=40)
    feats, band, devices = simulate_domains(waves[: args.train_clips], 8000, list_irs(DATA / "micirp" / "ir"),
                                            feature_config=fcfg, n_devices=args.devices, seed=args.seed,
                                            progress=False)
    test = waves[args.train_clips :]
    source = np.stack([log_mel(w, 8000, config=fcfg) for w in test])
    recorded = {name: np.stack([log_mel(apply_device_chain(w, 8000, chain, ir=load_ir(chain["ir"], 8000)), 8000,
                                        config=fcfg) for w in test]) for name, chain in devices.items()}
    preset = PRESETS["cpu-smoke"]
    # No step decay: with few epochs the preset's decay would leave most of them at a tenth of the rate.
    train = replace(preset.train, epochs=args.epochs, learning_rate=args.learning_rate, decay_fraction=1.0,
                    device="cpu", progress=False, seed=0)
    rows: dict = {"offset": {}}
    timings = {}
    for name in devices:
        offset = source + band[name][None, :, None]
        rows["offset"][name] = {"mean": float(np.abs(offset.mean(axis=(0, 2)) - recorded[name].mean(axis=(0, 2))).mean()),
                                "frame": float(np.abs(offset - recorded[name]).mean())}
    for norm in args.norms:
        t0 = time.process_time()
        conv = train_converter(feats, band, config=replace(preset.model, norm=norm), train=train, feature_config=fcfg)
        timings[norm] = round(time.process_time() - t0, 1)
        rows[norm] = {}
        for name in devices:
            out = conv.convert(source, band[name])
            rows[norm][name] = {"mean": float(np.abs(out.mean(axis=(0, 2)) - recorded[name].mean(axis=(0, 2))).mean()),
                                "frame": float(np.abs(out - recorded[name]).mean()),
                                "from_offset": float(np.abs(out - source - band[name][None, :, None]).mean())}
        print(norm, rows[norm], flush=True)
    doc = {"args": vars(args), "machine": machine(), "devices": devices, "rows": rows, "cpu_seconds": timings}
    (RESULTS / "converter_norm.json").write_text(json.dumps(doc, indent=1) + "\n")
    names = list(devices)
    lines = ["# Converter generator: instance norms against none", "",
             f"{args.train_clips} training clips on the reference and {args.devices} simulated devices, "
             f"{args.epochs} epochs (cpu-smoke architecture, learning rate {args.learning_rate}, no decay); "
             f"{args.test_clips} held-out clips converted from the original recordings. dB, mean over bands; "
             "`mean`: error of the long-term level per band, `frame`: mean frame error. "
             f"CPU seconds of training (one thread): {timings}. Machine: {machine()} (shared).", "",
             "| generator | " + " | ".join(f"{n}: mean / frame" for n in names) + " | all: mean / frame |",
             "|---|" + "---|" * (len(names) + 1)]
    for key, per in rows.items():
        cells = [f"{per[n]['mean']:.2f} / {per[n]['frame']:.2f}" for n in names]
        avg = (np.mean([per[n]["mean"] for n in names]), np.mean([per[n]["frame"] for n in names]))
        label = "offset only (input + conditioning)" if key == "offset" else f"converter, norm {key}"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {avg[0]:.2f} / {avg[1]:.2f} |")
    (RESULTS / "converter_norm.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
