"""How close the device converter's output comes to a real (simulated) recording by the target device.

Material: FSDD spoken digits (8 kHz) held out from the converter's training (the clips the training draw did not
pick), features as in the device-mismatch benchmark (log-mel, n_fft 256, hop 128, 40 bands). Devices: the
converter's own training devices ("seen": MicIRP impulse responses plus a drawn phone/laptop chain each: band
limits, coloured noise floor, compressor or AGC, level, soft clipping) and as many "unseen" devices drawn the same
way from MicIRP IRs the converter never saw. Each clip is converted from the original recording (flat response)
to the device with conditioning = the device's band response (IR plus band limits), and compared frame by frame
with the same clip recorded through the device's chain.

Errors, mean over clips, bands and frames (dB): ``none`` = input vs recording (doing nothing), ``offset`` = input
plus the conditioning vs recording (the textbook per-band offset, no learning), ``converter`` = converted vs
recording. Also the time-mean per-band shift error (conversion shift minus real shift).

Run (trains the cpu-smoke converter unless --converter is given; about 15 minutes on 2 cores):
    PYTHONPATH=src .venv/bin/python benchmarks/bench_converter.py --converter per-domain=conv.pt \\
        [--converter conditional=conv2.pt]
Writes ``benchmarks/results/converter.md``, ``.json`` and ``converter.png`` (one clip converted to three seen
devices beside the same clip recorded by them, with the per-band error against the conditioning).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine

from micmatch.audio import find_audio_files, load
from micmatch.conditioning import device_chain_band_response
from micmatch.features import log_mel
from micmatch.learn.converter_model import Converter
from micmatch.learn.converter_train import train_converter_from_folder
from micmatch.plot import plot_conversion
from micmatch.simulate import apply_device_chain, draw_device_chain, list_irs, load_ir

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def held_out(files: list[Path], n_train: int, seed: int, n: int) -> list[Path]:
    """The clips the training draw of ``train_converter_from_folder`` did not pick (the same seeded draw)."""
    if len(files) <= n_train:
        raise SystemExit("the corpus has no clips left out of training")
    rng = np.random.default_rng([seed, 7])
    used = set(rng.choice(len(files), size=n_train, replace=False).tolist())
    rest = [f for i, f in enumerate(files) if i not in used]
    pick = np.random.default_rng(99).choice(len(rest), size=min(n, len(rest)), replace=False)
    return [rest[i] for i in sorted(pick)]


def evaluate(model: Converter, clips: list[np.ndarray], devices: dict[str, dict], cfg) -> dict:
    rows = {}
    for name, chain in devices.items():
        ir = load_ir(chain["ir"], cfg.sample_rate)
        d = device_chain_band_response(chain, config=cfg, ir=ir)
        err = {"none": [], "offset": [], "converter": [], "shift_converter": [], "shift_offset": []}
        for x in clips:
            src = log_mel(x, cfg.sample_rate, config=cfg)
            real = log_mel(apply_device_chain(x, cfg.sample_rate, chain, ir=ir), cfg.sample_rate, config=cfg)
            conv = model.convert(src[None], d)[0]
            err["none"].append(np.mean(np.abs(src - real)))
            err["offset"].append(np.mean(np.abs(src + d[:, None] - real)))
            err["converter"].append(np.mean(np.abs(conv - real)))
            real_shift = np.mean(real - src, axis=-1)
            err["shift_converter"].append(np.mean(np.abs(np.mean(conv - src, axis=-1) - real_shift)))
            err["shift_offset"].append(np.mean(np.abs(d - real_shift)))
        rows[name] = {k: float(np.mean(v)) for k, v in err.items()}
        rows[name]["dynamics"] = chain["dynamics"]["mode"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DATA / "fsdd"))
    parser.add_argument("--irs", default=str(DATA / "micirp" / "ir"))
    parser.add_argument("--converter", action="append", default=[], help="LABEL=PATH of a trained converter")
    parser.add_argument("--config", default="cpu-smoke")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--clips", type=int, default=60, help="held-out clips per device")
    parser.add_argument("--seed", type=int, default=0, help="the converters' training seed (for the held-out set)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # small convolutions: one thread avoids synchronisation stalls on a busy machine

    models: dict[str, Converter] = {}
    for item in args.converter:
        label, _, path = item.partition("=")
        models[label] = Converter.load(path)
    if not models:
        t0 = time.perf_counter()
        models["per-domain"] = train_converter_from_folder(args.data, irs=args.irs, preset=args.config,
                                                           epochs=args.epochs, device="cpu", seed=args.seed,
                                                           log=lambda line: print(line, file=sys.stderr))
        print(f"trained in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    first = next(iter(models.values()))
    cfg = first.feature_config
    seen = first.info["simulated_devices"]
    n_train = first.info["n_clips"] + len(first.info.get("skipped", []))
    files = find_audio_files([Path(args.data)])
    test_files = held_out(files, n_train, args.seed, args.clips)
    clips = [load(f, sample_rate=cfg.sample_rate, channels="mix", dtype="float64")[0][0] for f in test_files]
    # Unseen devices: the same chain draw on IRs that no training device used.
    seen_irs = {Path(c["ir"]).name for c in seen.values()}
    rest = [p for p in list_irs(args.irs) if p.name not in seen_irs]
    rng = np.random.default_rng(2026)
    unseen_paths = [rest[i] for i in sorted(rng.choice(len(rest), size=min(len(seen), len(rest)), replace=False))]
    unseen = {p.stem: draw_device_chain(rng, cfg.sample_rate, ir=str(p)) for p in unseen_paths}

    results = {}
    for label, model in models.items():
        results[label] = {"seen": evaluate(model, clips, seen, cfg), "unseen": evaluate(model, clips, unseen, cfg),
                          "train_seconds": model.info.get("train_seconds"), "train": model.info.get("train"),
                          "history_last": model.info["history"][-1], "epochs": len(model.info["history"])}

    # The figure: one held-out clip converted to three seen devices.
    x = clips[0]
    src = log_mel(x, cfg.sample_rate, config=cfg)
    names = list(seen)[:3]
    conv, real, diffs = [], [], []
    for name in names:
        ir = load_ir(seen[name]["ir"], cfg.sample_rate)
        d = device_chain_band_response(seen[name], config=cfg, ir=ir)
        diffs.append(d)
        conv.append(first.convert(src[None], d)[0])
        real.append(log_mel(apply_device_chain(x, cfg.sample_rate, seen[name], ir=ir), cfg.sample_rate, config=cfg))
    RESULTS.mkdir(exist_ok=True)
    plot_conversion(src, conv, real, diffs, names, RESULTS / "converter.png", band_hz=cfg.band_frequencies(),
                    hop_s=cfg.hop_length / cfg.sample_rate,
                    title=f"{test_files[0].name}: converted ({next(iter(models))} converter) vs recorded")

    settings = {"data": args.data, "irs": args.irs, "clips": len(clips), "feature_config": cfg.to_json(),
                "converters": {k: str(v) for k, v in zip(models, args.converter or ["trained here"])},
                "shared_machine": "2 CPU cores shared with other jobs: training times are indicative only"}
    doc = {"settings": settings, "machine": machine(), "results": results,
           "devices": {"seen": seen, "unseen": unseen}, "plot_clip": str(test_files[0])}
    (RESULTS / "converter.json").write_text(json.dumps(doc, indent=1) + "\n")

    lines = ["# Device converter: converted vs recorded (simulated) log-mel features", "",
             (f"{len(clips)} held-out FSDD clips per device; errors are mean |difference| in dB over bands and "
              "frames (`none`: input as is, `offset`: input + conditioning, `converter`: converted). "
              "`shift` columns: error of the time-mean per-band shift against the recording's."),
             "", "The machine was shared with other jobs (2 CPU cores): training times are indicative only.", ""]
    for label, res in results.items():
        secs = res["train_seconds"]
        lines += [f"## {label} discriminator: {res['epochs']} epochs, trained in "
                  f"{secs / 60:.1f} min" if secs else f"## {label}", "",
                  "| devices | device | dynamics | none | offset | converter | shift: offset | shift: converter |",
                  "|---|---|---|---:|---:|---:|---:|---:|"]
        for group in ("seen", "unseen"):
            rows = res[group]
            for name, r in rows.items():
                lines.append(f"| {group} | {name} | {r['dynamics']} | {r['none']:.2f} | {r['offset']:.2f} | "
                             f"{r['converter']:.2f} | {r['shift_offset']:.2f} | {r['shift_converter']:.2f} |")
            mean = {k: np.mean([r[k] for r in rows.values()]) for k in
                    ("none", "offset", "converter", "shift_offset", "shift_converter")}
            lines.append(f"| {group} | **mean** | | {mean['none']:.2f} | {mean['offset']:.2f} | "
                         f"{mean['converter']:.2f} | {mean['shift_offset']:.2f} | {mean['shift_converter']:.2f} |")
        lines.append("")
    lines += ["![conversion](converter.png)", ""]
    (RESULTS / "converter.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
