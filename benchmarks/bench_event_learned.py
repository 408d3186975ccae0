"""Learned residual correction of event mode against the static correction, on simulated device recordings.

Material: FSDD speech (8 kHz), clips concatenated in a seeded order to ``--seconds`` (default 120 s, an event
device's overlap with the reference), with a noise floor 60 dB below the speech (the reference microphone's own;
pauses are not digital silence). Per seed, one draw of a MicIRP microphone IR, a shoebox room (pyroomacoustics,
RT60 0.2-0.8 s, device 0.5-3 m from the source) and a signal-to-noise ratio (10-20 dB, white noise); four devices
from that draw:

* ``near``: the microphone IR only (and a level change);
* ``far``: the IR in the room (reverberation);
* ``noisy``: the IR plus noise;
* ``far_noisy``: room, IR and noise.

Per device, as ``event --learned`` does: the static (aligned spectrum) correction fitted on the whole overlap and
applied, then :func:`micmatch.learn.event_residual.fit_residual` on the statically corrected device: trained on
the first 75%, measured on the last 25% (held-out frame LSD, levels matched, pauses left out:
:func:`micmatch.learn.heldout.heldout_lsd_db`), kept only when at least 0.1 dB better than the static result.
"result" is what event mode delivers: the learned LSD when kept, else the static one.

Timing: one more fit, ``far_noisy`` of the first seed at 44.1 kHz (``--seconds`` long) on full-band speech-like
material (pink noise in syllables: FSDD holds nothing above 4 kHz), one torch thread.

Run: ``PYTHONPATH=src nice -n 19 .venv/bin/python benchmarks/bench_event_learned.py`` (needs ../shared/data and
pyroomacoustics). Writes ``benchmarks/results/event_learned.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fsdd_data_dir, machine, single_thread_env, write_results

single_thread_env()

import numpy as np  # noqa: E402

from micmatch.audio import resample  # noqa: E402
from micmatch.correct import apply_correction  # noqa: E402
from micmatch.learn.event_residual import fit_residual  # noqa: E402
from micmatch.learn.heldout import heldout_lsd_db, split_point, static_correction  # noqa: E402
from micmatch.pairs import concatenate_clips, draw_simulation, simulate_pair  # noqa: E402

SR = 8000
DEVICES = {"near": ("room", "snr_db"), "far": ("snr_db",), "noisy": ("room",), "far_noisy": ()}


def source(d: Path, seconds: float, seed: int, sample_rate: int = SR) -> np.ndarray:
    with open(d / "fsdd" / "metadata.csv", newline="") as f:
        files = [d / "fsdd" / r["filename"] for r in csv.DictReader(f)]
    rng = np.random.default_rng([seed, 7])
    x, _ = concatenate_clips(files, SR, duration_s=seconds, rng=rng)
    x = x + rng.standard_normal(x.shape) * np.sqrt(np.mean(x * x)) * 1e-3
    if sample_rate != SR:
        x = resample(x, SR, sample_rate)
    return x


def fullband_source(seconds: float, seed: int, sample_rate: int) -> np.ndarray:
    """Speech-like full-band material for the timing fit (FSDD holds nothing above 4 kHz): pink noise switched
    on and off in 125-250 ms syllables, with the same 60 dB floor."""
    rng = np.random.default_rng([seed, 13])
    n = int(seconds * sample_rate)
    spec = np.fft.rfft(rng.standard_normal(n)) * np.maximum(np.fft.rfftfreq(n, 1.0 / sample_rate), 50.0) ** -0.5
    x = np.fft.irfft(spec, n)
    syllables = rng.integers(sample_rate // 8, sample_rate // 4, size=n // (sample_rate // 8) + 1)
    on = np.repeat(rng.uniform(size=syllables.size) > 0.35, syllables)[:n].astype(float)
    x *= np.convolve(on, np.hanning(sample_rate // 50) / (sample_rate // 100), mode="same")
    x = 0.3 * x / np.abs(x).max()
    return x + rng.standard_normal(n) * np.sqrt(np.mean(x * x)) * 1e-3


def one_device(ref: np.ndarray, params: dict, sample_rate: int, seed: int) -> dict:
    pair = simulate_pair(ref, sample_rate, params)
    r, d = pair.reference, pair.device
    correction = static_correction(r, d, sample_rate)  # what event mode does: the whole overlap
    d_static = apply_correction(d, sample_rate, correction)
    cut = split_point(r.shape[0], sample_rate, fraction=0.25, min_heldout_s=3.0)
    t0 = time.perf_counter()
    fit = fit_residual(d_static, r, sample_rate, seed=seed)
    fit_s = time.perf_counter() - t0
    f = fit.figures
    static, learned = f["heldout_lsd_db"]["static"], f["heldout_lsd_db"]["learned"]
    result = learned if fit.kept else static
    return {"uncorrected_db": round(heldout_lsd_db(r[cut:], d[cut:], sample_rate), 4), "static_db": static,
            "learned_db": learned, "kept": fit.kept, "result_db": result, "gain_db": round(static - result, 4),
            "learned_minus_static_db": round(learned - static, 4), "fit_s": round(fit_s, 2),
            "epochs": f["epochs"], "best_epoch": f["best_epoch"], "train_s": f["train_s"],
            "heldout_s": f["heldout_s"], "reason": fit.reason}


def run(args) -> dict:
    d = fsdd_data_dir()
    irs = sorted(str(p) for p in (d / "micirp" / "ir").glob("*.wav"))
    rows = []
    for seed in args.seeds:
        ref = source(d, args.seconds, seed)
        base = draw_simulation(np.random.default_rng([seed, 11]), devices=irs, room=True, noise=True,
                               rt60_s=(0.2, 0.8), snr_db=(10.0, 20.0))
        for name, off in DEVICES.items():
            params = {**base, **{k: None for k in off}}
            row = {"seed": seed, "device": name, "ir": Path(base["device"]).stem,
                   "rt60_s": None if params["room"] is None else params["room"]["rt60_s"],
                   "snr_db": params["snr_db"], **one_device(ref, params, SR, seed)}
            print(row, flush=True)
            rows.append(row)
    timing = None
    if args.timing:
        seed = args.seeds[0]
        ref = fullband_source(args.seconds, seed, 44100)
        base = draw_simulation(np.random.default_rng([seed, 11]), devices=irs, room=True, noise=True,
                               rt60_s=(0.2, 0.8), snr_db=(10.0, 20.0))
        timing = {"sample_rate": 44100, "seconds": args.seconds, "device": "far_noisy", "seed": seed,
                  **one_device(ref, base, 44100, seed)}
        print("timing", timing, flush=True)
    return {"settings": vars(args), "rows": rows, "timing": timing, "load_average": os.getloadavg()}


def markdown(res: dict) -> str:
    s = res["settings"]
    lines = ["# Event mode: learned residual over the static correction (simulated devices)", "",
             "Generated by `benchmarks/bench_event_learned.py` (settings in event_learned.json). FSDD speech at 8 kHz, "
             f"{s['seconds']:g} s per device overlap; MicIRP microphone IR, shoebox room (RT60 0.2-0.8 s), white "
             "noise at 10-20 dB SNR, drawn per seed. Held-out frame LSD (dB) of the last 25% of the overlap "
             "(levels matched, 100 Hz-3.6 kHz, pauses left out); the learned residual is trained on the first 75% "
             "and kept only when at least 0.1 dB better than the static result. Machine: "
             f"{res['machine']['cpus']}-core CPU shared with other jobs, one torch thread, no GPU.", "",
             "| seed | device | IR | RT60 (s) | SNR (dB) | uncorrected | static | learned | kept | result | "
             "gain | fit (s) | epochs |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(f"| {r['seed']} | {r['device']} | {r['ir']} | {r['rt60_s'] or ''} | {r['snr_db'] or ''} | "
                     f"{r['uncorrected_db']:.2f} | {r['static_db']:.2f} | {r['learned_db']:.2f} | "
                     f"{'yes' if r['kept'] else 'no'} | {r['result_db']:.2f} | {r['gain_db']:.2f} | {r['fit_s']:.1f} | "
                     f"{r['epochs']} |")
    lines += ["", "Per device kind (mean over seeds): static -> result (gain).", ""]
    for name in DEVICES:
        rs = [r for r in res["rows"] if r["device"] == name]
        if rs:
            st, out = np.mean([r["static_db"] for r in rs]), np.mean([r["result_db"] for r in rs])
            lines.append(f"- {name}: {st:.2f} -> {out:.2f} dB ({st - out:.2f} dB better; kept "
                         f"{sum(r['kept'] for r in rs)}/{len(rs)})")
    worse = [r for r in res["rows"] if r["result_db"] > r["static_db"]]
    lines += ["", f"Result worse than static on held-out audio: {len(worse)} of {len(res['rows'])} devices."]
    t = res.get("timing")
    if t:
        lines += ["", f"Timing: {t['seconds']:g} s at 44.1 kHz ({t['device']}, seed {t['seed']}): fit "
                  f"{t['fit_s']:.1f} s ({t['epochs']} epochs on {t['train_s']:g} s, one torch thread; full-band pink noise in "
                  f"syllables, 100 Hz-16 kHz); static "
                  f"{t['static_db']:.2f} dB, learned {t['learned_db']:.2f} dB, kept: {'yes' if t['kept'] else 'no'}."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--no-timing", dest="timing", action="store_false", help="skip the 44.1 kHz timing fit")
    args = ap.parse_args()
    res = run(args)
    md = write_results("event_learned", res, markdown({**res, "machine": machine()}))
    print(md.read_text())


if __name__ == "__main__":
    main()
