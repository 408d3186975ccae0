"""Learned normalizers (spectral-ratio network, end-to-end EQ CNN) against spectrum correction on simulated pairs.

Material: FSDD speech (8 kHz). Calibration pairs: clips of the train split, concatenated in a seeded order, as
the reference; the same through a simulated device as the device recording. Test: other clips (the test split),
30 s, through the same device (a fresh noise draw). Device: a MicIRP microphone impulse response drawn by the
seed. Scenarios:

* (a) ``linear``: the device only (a linear filter and a level change);
* (b) ``room``: the device in a reverberant shoebox room (pyroomacoustics, drawn size/RT60/positions);
* (c) ``noise_clip``: the device plus white noise at a drawn SNR (10-20 dB) and soft clipping.

Methods: uncorrected; unaligned spectrum correction (``estimate_responses`` on the two calibration recordings as
unrelated material); aligned spectrum correction (``estimate_pair``); the static-gain oracle (the per-bin mean of
the test audio's own log ratio, added to the device's spectrogram in the metric's STFT: the best static gain in
the least-squares sense, which no static equalizer trained elsewhere can beat); RatioNet; EQNet.

Metrics on the test audio: frame LSD (``micmatch.metrics``: n_fft 256, hop 128, 0 Hz left out; all frames, and
the frames within 40 dB of the loudest), and the long-term 1/3-octave spectrum distance (mean power over frames,
n_fft 512, smoothed over 1/3 octave, dB RMS over 100-3800 Hz).

Run: ``PYTHONPATH=src .venv/bin/python benchmarks/bench_normalizers.py [--quick]`` (needs ../shared/data).
Writes ``benchmarks/results/normalizers.md`` and ``.json``. Every row records the run that produced it (``run``:
its start time); ``--keep-rows-from`` keeps the rows of an earlier results file that this run does not recompute,
with their run labels, and the file lists every run's settings.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, fsdd_data_dir, machine

from micmatch import spectral
from micmatch.aligned import estimate_pair
from micmatch.correct import apply_correction, correction_curve
from micmatch.estimate import estimate_responses
from micmatch.learn.normalizer_train import fit_eq_net, fit_ratio_net
from micmatch.metrics import log_spectral_distance, lsd_from_power_db
from micmatch.pairs import (
    AlignedPair,
    concatenate_clips,
    draw_simulation,
    simulate_pair,
)

SR = 8000
LSD_FFT, LSD_HOP = 256, 128
LT_FFT = 512
BAND = (100.0, 3800.0)
SC_FFT, SC_HOP = 512, 128
SCENARIOS = {"linear": {}, "room": {"room": True}, "noise_clip": {"noise": True, "clipping": True}}


def split_files(d: Path) -> tuple[list[Path], list[Path]]:
    with open(d / "fsdd" / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    train = [d / "fsdd" / r["filename"] for r in rows if r["split"] == "train"]
    test = [d / "fsdd" / r["filename"] for r in rows if r["split"] == "test"]
    return train, test


def long_term_db(x: np.ndarray) -> np.ndarray:
    p = 10.0 ** (spectral.log_power_frames(x, n_fft=LT_FFT, hop_length=LT_FFT // 4) / 10.0)
    f = spectral.frequencies(SR, LT_FFT)
    return 10.0 * np.log10(np.maximum(spectral.smooth_fractional_octave(p.mean(axis=1), f, 1 / 3), 1e-20))


def long_term_distance(ref: np.ndarray, est_lt_db: np.ndarray) -> float:
    f = spectral.frequencies(SR, LT_FFT)
    band = (f >= BAND[0]) & (f <= BAND[1])
    d = long_term_db(ref)[band] - est_lt_db[band]
    return float(np.sqrt(np.mean(d * d)))


def scores(ref: np.ndarray, out: np.ndarray) -> dict:
    return {"lsd_db": log_spectral_distance(ref, out, SR, n_fft=LSD_FFT, hop_length=LSD_HOP),
            "lsd_active_db": log_spectral_distance(ref, out, SR, n_fft=LSD_FFT, hop_length=LSD_HOP, active_db=40.0),
            "long_term_db": long_term_distance(ref, long_term_db(out))}


def oracle_scores(ref: np.ndarray, dev: np.ndarray) -> dict:
    """The best static per-bin gain, computed on the test audio itself, in the metrics' own frames."""
    out = {}
    pr = spectral.log_power_frames(ref, n_fft=LSD_FFT, hop_length=LSD_HOP)
    pd = spectral.log_power_frames(dev, n_fft=LSD_FFT, hop_length=LSD_HOP)
    gain = np.mean(pr - pd, axis=1, keepdims=True)
    keep = np.arange(pr.shape[0]) > 0
    out["lsd_db"] = lsd_from_power_db(pr, pd + gain, bins=keep)
    level = 10.0 * np.log10(np.maximum(np.mean(10.0 ** (pr / 10.0), axis=0), 1e-30))
    active = level >= level.max() - 40.0
    gain_active = np.mean((pr - pd)[:, active], axis=1, keepdims=True)  # the oracle of the active frames
    out["lsd_active_db"] = lsd_from_power_db(pr, pd + gain_active, bins=keep, frame_weights=active.astype(float))
    # Long-term: the oracle's static gain for the long-term spectrum is the ratio of the long-term spectra.
    out["long_term_db"] = 0.0
    return out


def sc(cal_ref, cal_dev, test_dev, aligned: bool) -> np.ndarray:
    if aligned:
        res = estimate_pair(cal_ref, cal_dev, SR, n_fft=SC_FFT, hop_length=SC_HOP).responses
        corr = correction_curve(res, "device", "reference")
    else:
        res = estimate_responses({"reference": [cal_ref], "device": [cal_dev]}, SR, n_fft=SC_FFT, hop_length=SC_HOP)
        corr = correction_curve(res, "device", "reference")
    return apply_correction(test_dev.astype(np.float32), SR, corr).astype(np.float64)


def run(args) -> dict:
    d = fsdd_data_dir()
    train_files, test_files = split_files(d)
    irs = sorted((d / "micirp" / "ir").glob("*.wav"))
    rng = np.random.default_rng(args.seed)
    test_audio, _ = concatenate_clips(test_files, SR, duration_s=args.test_s, rng=rng)
    cal_audio, _ = concatenate_clips(train_files, SR, duration_s=max(args.sizes), rng=rng)
    # The reference microphone's own noise floor, 60 dB below the speech: the gaps between clips are not digital
    # silence (which would make every frame-wise comparison in the pauses meaningless).
    def floor(x):
        return x + rng.standard_normal(x.shape) * np.sqrt(np.mean(x * x)) * 1e-3

    test_audio, cal_audio = floor(test_audio), floor(cal_audio)
    run_id = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())
    results = {"settings": vars(args), "run": run_id, "scenarios": {}, "load_average_start": os.getloadavg(),
               "torch_threads": torch.get_num_threads()}
    lt_weight = args.ratio_long_term_weight

    def fit_ratio(pair, size, weight):
        model = fit_ratio_net([pair], epochs=args.ratio_epochs if size <= 60 else args.ratio_epochs_long,
                              patience=8, compute="cpu", progress=False, seed=args.seed, long_term_weight=weight)
        row = scores(ref_t, model.apply(dev_t.astype(np.float32), SR).astype(np.float64))
        row.update(train_time_s=model.summary["train_time_s"], epochs_run=model.summary["epochs_run"],
                   validation_lsd_db=model.summary["validation_lsd_db"], long_term_weight=weight)
        return row

    for name, stages in SCENARIOS.items():
        if args.scenarios and name not in args.scenarios:
            continue
        params = draw_simulation(np.random.default_rng([args.seed, len(name)]), devices=[str(p) for p in irs],
                                 snr_db=(10.0, 20.0), **stages)
        test_params = {**params, "noise_seed": params["noise_seed"] + 1}
        test_pair = simulate_pair(test_audio, SR, test_params)
        ref_t, dev_t = test_pair.reference.astype(np.float64), test_pair.device.astype(np.float64)
        full = simulate_pair(cal_audio, SR, params)
        scen = {"params": params, "rows": {}}
        scen["rows"]["uncorrected"] = {**scores(ref_t, dev_t), "run": run_id}
        scen["rows"]["oracle (static, on test)"] = {**oracle_scores(ref_t, dev_t), "run": run_id}
        for size in args.sizes:
            if name == "linear" and size > args.linear_max_s:
                continue
            n = int(size * SR)
            cal_ref, cal_dev = full.reference[:n].astype(np.float64), full.device[:n].astype(np.float64)
            pair = AlignedPair(full.reference[:n], full.device[:n], SR, f"calibration {size:g} s")
            tag = f"{size:g} s"
            scen["rows"][f"unaligned SC, {tag}"] = {**scores(ref_t, sc(cal_ref, cal_dev, dev_t, aligned=False)),
                                                    "run": run_id}
            scen["rows"][f"aligned SC, {tag}"] = {**scores(ref_t, sc(cal_ref, cal_dev, dev_t, aligned=True)),
                                                  "run": run_id}
            if size in args.ratio_sizes:
                row = {**fit_ratio(pair, size, lt_weight), "run": run_id}
                scen["rows"][f"RatioNet, {tag}"] = row
                print(name, tag, "ratio", row, flush=True)
            for weight in args.ratio_sweep_weights if size in args.ratio_sweep_sizes else []:
                if weight == lt_weight:
                    continue
                row = {**fit_ratio(pair, size, weight), "run": run_id}
                scen["rows"][f"RatioNet, {tag}, long-term weight {weight:g}"] = row
                print(name, tag, "ratio sweep", row, flush=True)
            if size in args.eq_sizes:
                model = fit_eq_net([pair], epochs=args.eq_epochs, epochs_autoencoder=args.eq_ae_epochs, patience=10,
                                   compute="cpu", progress=False, seed=args.seed)
                row = scores(ref_t, model.apply(dev_t.astype(np.float32), SR).astype(np.float64))
                row.update(train_time_s=model.summary["train_time_s"], epochs_run=model.summary["epochs_run"],
                           validation_lsd_db=model.summary["validation_lsd_db"], run=run_id)
                scen["rows"][f"EQNet, {tag}"] = row
                print(name, tag, "eq", row, flush=True)
        results["scenarios"][name] = scen
        (RESULTS / "normalizers.partial.json").write_text(json.dumps(results, indent=1, default=str))
    results["load_average_end"] = os.getloadavg()
    return results


def markdown(results: dict) -> str:
    s = results["settings"]
    lines = [
        "# Learned normalizers vs spectrum correction (simulated pairs)", "",
        "Generated by `benchmarks/bench_normalizers.py` (settings in normalizers.json). FSDD speech at 8 kHz through "
        "a MicIRP microphone IR; (a) linear device only, (b) device in a reverberant shoebox room, (c) device + "
        f"white noise at a drawn SNR + soft clipping. Test: {s['test_s']:g} s of held-out clips (test split). "
        "Frame LSD: n_fft 256, hop 128, 0 Hz left out (all frames / frames within 40 dB of the loudest). "
        "Long-term: 1/3-octave smoothed mean power spectrum, dB RMS over 100-3800 Hz. The static-gain oracle's "
        "long-term distance is 0 by construction (its gain is fitted to the test audio).", "",
        f"Machine: {results['machine']['cpus']} CPU cores shared with other jobs, no GPU; training times are "
        "wall times on that shared machine (CPU). The column 'run' names the run that produced each row; the runs "
        "(settings in normalizers.json under runs):", ""]
    for run_id, r in results["runs"].items():
        st = r.get("settings") or {}
        keys = ("scenarios", "sizes", "ratio_sizes", "eq_sizes", "ratio_epochs", "ratio_epochs_long",
                "ratio_long_term_weight", "ratio_sweep_weights", "ratio_sweep_sizes", "eq_epochs", "eq_ae_epochs")
        desc = ", ".join(f"{k} {st[k]}" for k in keys if k in st)
        load = r.get("load_average")
        extra = (f"; torch threads {r['torch_threads']}, load average {load[0]:.1f} -> {load[1]:.1f}"
                 if load else "")
        lines.append(f"- {run_id}: {desc}{extra}")
    lines += ["", "RatioNet rows without a long-term weight in their name use the run's ratio_long_term_weight "
              "(runs before that option: 0). EQNet's loss settings are fit_eq_net's defaults of the run's revision.", ""]
    for name, scen in results["scenarios"].items():
        p = scen["params"]
        extra = []
        if p.get("room"):
            extra.append(f"RT60 {p['room']['rt60_s']} s")
        if p.get("snr_db") is not None:
            extra.append(f"SNR {p['snr_db']} dB, drive {p['drive_db']} dB")
        lines += [f"## ({'abc'[list(SCENARIOS).index(name)]}) {name}: {Path(p['device']).stem} "
                  f"{', '.join(extra)}", "",
                  "| method | LSD (dB) | LSD active (dB) | long-term 1/3-oct (dB) | train time (s) | epochs | run |",
                  "|---|---|---|---|---|---|---|"]
        for method, r in scen["rows"].items():
            t = f"{r['train_time_s']:.0f}" if "train_time_s" in r else ""
            e = str(r.get("epochs_run", ""))
            lines.append(f"| {method} | {r['lsd_db']:.2f} | {r['lsd_active_db']:.2f} | {r['long_term_db']:.2f} | "
                         f"{t} | {e} | {r.get('run', '')} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-s", type=float, default=30.0)
    ap.add_argument("--sizes", type=float, nargs="+", default=[15.0, 60.0, 300.0])
    ap.add_argument("--ratio-sizes", type=float, nargs="+", default=[15.0, 60.0, 300.0])
    ap.add_argument("--eq-sizes", type=float, nargs="+", default=[15.0, 60.0])
    ap.add_argument("--ratio-epochs", type=int, default=30)
    ap.add_argument("--ratio-epochs-long", type=int, default=10)
    ap.add_argument("--ratio-long-term-weight", type=float,
                    default=inspect.signature(fit_ratio_net).parameters["long_term_weight"].default,
                    help="RatioNet's long-term-spectrum loss weight (default: fit_ratio_net's)")
    ap.add_argument("--ratio-sweep-weights", type=float, nargs="*", default=[],
                    help="extra RatioNet rows with these long-term weights (at --ratio-sweep-sizes)")
    ap.add_argument("--ratio-sweep-sizes", type=float, nargs="*", default=[])
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default torch's; one avoids thread contention on a shared machine)")
    ap.add_argument("--eq-epochs", type=int, default=40)
    ap.add_argument("--eq-ae-epochs", type=int, default=5)
    ap.add_argument("--scenarios", nargs="*", default=None)
    ap.add_argument("--linear-max-s", type=float, default=300.0, help="largest calibration size for scenario (a)")
    ap.add_argument("--quick", action="store_true", help="15 s calibration only, fewer epochs")
    ap.add_argument("--keep-rows-from", type=Path, default=None,
                    help="results JSON whose rows this run does not recompute are kept (e.g. to rerun one model)")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.ratio_sizes, args.eq_sizes = [15.0], [15.0], [15.0]
        args.ratio_epochs, args.eq_epochs, args.eq_ae_epochs = 10, 10, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    results = run(args)
    results["runs"] = {results["run"]: {"settings": results["settings"], "torch_threads": results["torch_threads"],
                                        "load_average": [results["load_average_start"][0],
                                                         results["load_average_end"][0]]}}
    if args.keep_rows_from is not None:
        old = json.loads(args.keep_rows_from.read_text())
        # Rows of files written before rows carried their run get the earlier file's label.
        legacy = f"earlier ({old.get('date')})"
        old_runs = old.get("runs") or {legacy: {"settings": old.get("settings")}}
        for name, scen in results["scenarios"].items():
            for method, row in old["scenarios"].get(name, {}).get("rows", {}).items():
                scen["rows"].setdefault(method, {**row, "run": row.get("run", legacy)})
        for name, scen in old["scenarios"].items():  # scenarios this run did not touch
            if name not in results["scenarios"]:
                rows = {m: {**r, "run": r.get("run", legacy)} for m, r in scen["rows"].items()}
                results["scenarios"][name] = {**scen, "rows": rows}
        order = {name: i for i, name in enumerate(SCENARIOS)}
        results["scenarios"] = dict(sorted(results["scenarios"].items(), key=lambda kv: order.get(kv[0], 99)))
        used = {r["run"] for scen in results["scenarios"].values() for r in scen["rows"].values()}
        results["runs"].update({k: v for k, v in old_runs.items() if k in used and k not in results["runs"]})
    results["machine"] = machine()
    results["date"] = time.strftime("%Y-%m-%d")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "normalizers.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (RESULTS / "normalizers.md").write_text(markdown(results) + "\n")
    (RESULTS / "normalizers.partial.json").unlink(missing_ok=True)
    print(markdown(results))


if __name__ == "__main__":
    main()
