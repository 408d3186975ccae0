"""Event mode on simulated events: several phones in a room, synchronisation, seams and stems against the truth.

Scenes from ``event_scenes.py`` (seeded): speech (FSDD digits) or synthetic music in a shoebox room (RT60 drawn
0.2-0.8 s), 3 to 8 devices (measured microphone IR + drawn phone chain, 16/44.1/48 kHz, clock drift up to
100 ppm, partial overlaps, one device linked to the reference only through another), device 0 given as the
reference. Each scene goes through the public ``micmatch.event(...)`` call; the figures come from its result
object, ``event.json`` and the stems it wrote:

- synchronisation error: the largest distance (ms) between a device's place on the timeline and the truth, at
  the start and end of each device (the maps are straight lines), over all devices;
- seams (every pair of devices at regular points, ``event``'s own figures): median frame log-spectral distance
  before and after correction, its reduction (%), median absolute loudness jump after (LU);
- long-term distance of each stem (over the device's span) to the reference device's recording of the same moments
  (1/3-octave bands, level removed, dB RMS; 100-3800 Hz for speech, whose source ends at 4 kHz; 100 Hz to
  min(16 kHz, 0.45 x the lower rate) for music), before (the device's own recording) and after (its stem);
- seconds of processing per minute of recorded audio (all devices together).

Plus one 10-minute event for the synchronisation target: music without a room (in the most reverberant rooms
synchronisation can still fail, see the scenes), 4 devices whose clocks run 0 (the reference), +100, +40 and -60 ppm against the
source's (so pairs differ by up to 160 ppm). ``--dry`` adds the same scenes without a room for comparison.

    PYTHONPATH=src python benchmarks/bench_event.py [--scenes 6] [--seed 0] [--dry] [--no-room] [--no-long] [--learned] [--quick]
        [--data ../shared/data] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine  # noqa: E402
from event_scenes import make_scene  # noqa: E402

#: Issue targets.
SYNC_TARGET_MS = 1.0
SEAM_REDUCTION_TARGET = 40.0
LONG_TERM_TARGET_DB, LONG_TERM_SHARE = 1.0, 0.9
LOUDNESS_TARGET_LU = 0.5


def long_term_db(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    from micmatch.longterm import long_term_spectrum_db
    from micmatch.response import SpectralConfig

    config = SpectralConfig(sample_rate=sr, n_fft=4096, hop_length=1024)
    return long_term_spectrum_db(np.asarray(x, dtype=np.float64), config), config.frequencies


def distance(a: np.ndarray, b: np.ndarray, sr: int, band: tuple[float, float]) -> float:
    from micmatch.longterm import long_term_distance_db

    sa, f = long_term_db(a, sr)
    sb, _ = long_term_db(b, sr)
    return long_term_distance_db(sa, sb, f, band_hz=band)


def reduction_pct(before: float | None, after: float | None) -> float | None:
    """How much lower ``after`` is than ``before`` (%, one decimal); None when either is missing or before is 0."""
    return None if not before or after is None else round(100.0 * (1.0 - after / before), 1)


def seam_floor(res, scene) -> float | None:
    """Median over the event's own seams of what no static correction can remove: the frame LSD of the corrected
    stems around each cut (as ``event`` measures it: 100 Hz to 0.45 x the pair's lower rate, frames within 40 dB
    of the loudest, the same floor) after also taking out each frame's level difference and the window's average
    difference per bin (the best static EQ of that very window). What is left is frame-by-frame: each device's
    own noise in the spectrum's valleys and pauses, compressors and gain controls acting within the window."""
    import soundfile as sf

    from micmatch import spectral
    from micmatch.metrics import DEFAULT_LSD_FLOOR_DB

    stems = {k: sf.read(str(v), dtype="float64", always_2d=True)[0].mean(axis=1) for k, v in res.stems.items()}
    rates = {d.name: d.rate for d in scene.devices}
    sr, half, out = res.sample_rate, int(1.5 * res.sample_rate), []
    for seam in res.seams:
        a, b, c = seam["from"], seam["to"], int(round(seam["time_s"] * sr))
        pa = spectral.log_power_frames(stems[a][c - half : c + half], n_fft=2048, hop_length=512)
        pb = spectral.log_power_frames(stems[b][c - half : c + half], n_fft=2048, hop_length=512)
        f = spectral.frequencies(sr, 2048)
        keep = (f >= 100.0) & (f <= min(0.45 * sr, 0.45 * min(rates[a], rates[b]))) & (f > 0)
        level = 10 * np.log10(np.maximum(np.mean(10 ** (pa / 10), axis=0), 1e-30))
        active = level >= level.max() - 40.0
        lo = pa[keep].max() - DEFAULT_LSD_FLOOR_DB
        d = (np.maximum(pa, lo) - np.maximum(pb, lo))[keep][:, active]
        d = d - d.mean(axis=0, keepdims=True)
        d = d - d.mean(axis=1, keepdims=True)
        out.append(float(np.mean(np.sqrt(np.mean(d * d, axis=0)))))
    return round(float(np.median(out)), 3) if out else None


def shared_band(route: list, band: tuple[float, float]) -> tuple[float, float] | None:
    """The part of ``band`` that every device on a route (the device, the ones linking it, the reference) records
    by its drawn chain: above 1.5 x the highest high-pass corner, below the lowest low-pass corner / 1.25 (the
    Butterworth corners are -3 dB points; there the devices still differ by several dB). micmatch corrects only
    inside the band the devices share (it does not boost what a device did not record), so this is where its
    correction can be judged; None when less than an octave is left."""
    lo = max([band[0]] + [1.5 * d.chain["high_pass"]["freq_hz"] for d in route])
    hi = min([band[1]] + [d.chain["low_pass"]["freq_hz"] / 1.25 for d in route if d.chain.get("low_pass")])
    return (lo, hi) if hi >= 2 * lo else None


def run_scene(scene, work: Path, learned=None) -> dict:
    """``micmatch.event`` on one scene; its figures."""
    import soundfile as sf

    import micmatch
    from micmatch.audio import resample
    from micmatch.eventsync import coverage

    paths = scene.write(work / "in")
    audio_min = sum(d.duration_s for d in scene.devices) / 60.0
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = micmatch.event(paths, work / "out", reference=paths[0], learned=learned)
        except micmatch.MeasurementError as exc:
            return {"source": scene.source, "failed": str(exc), "rt60_s": scene.rt60_s}
    elapsed = time.perf_counter() - t0
    with open(res.event_json) as fh:
        summary = json.load(fh)
    ref = scene.devices[0]
    sync, devices = [], []
    for d in scene.devices:
        row = {"name": d.name, "rate": d.rate, "drift_ppm": round(d.drift_ppm, 2), "start_s": round(d.start_s, 3),
               "duration_s": round(d.duration_s, 3), "ir": d.ir, "kept": d.name in res.clocks}
        if d.name in res.clocks:
            c = res.clocks[d.name]
            t = np.array([0.0, d.duration_s])
            signed = (c.start_s + c.rate * t - d.truth_timeline(ref, t)) * 1e3
            err = np.abs(signed)
            row["sync_error_ms"] = round(float(err.max()), 4)
            # the error's change over the device's span: what a wrong drift costs (a constant is a wrong offset)
            row["sync_error_change_ms"] = round(float(signed[1] - signed[0]), 4)
            row["route"] = summary["recordings"][d.name]["route"]
            sync.append(float(err.max()))
        if d.name in scene.truth and d.name in res.stems:
            stem, sr = sf.read(str(res.stems[d.name]), dtype="float64", always_2d=True)
            lo, hi = coverage(res.clocks[d.name], out_rate=sr, start_s=res.start_s, n_samples=stem.shape[0])
            top = 3800.0 if scene.source == "speech" else min(16000.0, 0.45 * min(d.rate, ref.rate))
            band = (100.0, top)
            truth = scene.truth[d.name]
            own = resample(d.audio.astype(np.float64), d.rate, sr) if d.rate != sr else d.audio
            row["long_term_db_before"] = round(distance(own, truth, sr, band), 3)
            row["long_term_db_after"] = round(distance(stem[lo:hi].mean(axis=1), truth, sr, band), 3)
            row["long_term_band_hz"] = [100.0, round(top, 1)]
            shared = shared_band([scene.devices[int(n[3:])] for n in row["route"]], band)
            if shared is not None:
                row["long_term_db_after_shared_band"] = round(distance(stem[lo:hi].mean(axis=1), truth, sr, shared), 3)
                row["long_term_shared_band_hz"] = [round(shared[0], 1), round(shared[1], 1)]
        devices.append(row)
    shared = _shared_band_seams(scene, res, paths, work)
    seams = res.seam_summary
    lsd = seams["median_frame_lsd_db"]
    reduction = reduction_pct(lsd["before"], lsd["after"])
    return {"source": scene.source, "rt60_s": None if scene.rt60_s is None else round(scene.rt60_s, 3),
            "rt60_measured_s": None if scene.rt60_measured_s is None else round(scene.rt60_measured_s, 3),
            "seconds": scene.seconds, "devices": devices, "left_out": res.left_out,
            "max_sync_error_ms": round(max(sync), 4) if sync else None, "seams": seams,
            "seam_lsd_reduction_pct": reduction, "shared_band_seams": shared,
            "seam_lsd_floor_db": seam_floor(res, scene),
            "seconds_per_audio_minute": round(elapsed / audio_min, 3),
            "elapsed_s": round(elapsed, 2), "audio_minutes": round(audio_min, 3)}


def _shared_band_seams(scene, res, paths, work: Path) -> dict | None:
    """Seam figures inside the band both devices of a pair really carry: below the lower of their low-pass corners
    (and 3.8 kHz for speech). ``event``'s own seam figures run to 0.45 x the lower sample rate, so they count the
    band above a phone's low-pass corner, where it holds only noise and no correction can help. "Before" are the
    stems of a second ``micmatch.event`` call with ``strength=0`` and ``loudness="keep"`` (the recordings placed
    on the same timeline, uncorrected)."""
    import soundfile as sf

    import micmatch
    from micmatch import eventseams
    from micmatch.eventsync import coverage

    try:
        raw = micmatch.event(paths, work / "raw", reference=paths[0], strength=0.0, loudness="keep")
    except micmatch.MeasurementError:
        return None
    before, after, covered, tops = {}, {}, {}, {}
    for d in scene.devices:
        if d.name not in res.stems or d.name not in raw.stems:
            continue
        after[d.name] = sf.read(str(res.stems[d.name]), dtype="float32", always_2d=True)[0].T
        before[d.name] = sf.read(str(raw.stems[d.name]), dtype="float32", always_2d=True)[0].T
        covered[d.name] = coverage(res.clocks[d.name], out_rate=res.sample_rate, start_s=res.start_s,
                                   n_samples=res.n_samples)
        lp = d.chain.get("low_pass")
        tops[d.name] = min(0.45 * d.rate, lp["freq_hz"] if lp else np.inf, 3800.0 if scene.source == "speech"
                           else np.inf)
    seams = eventseams.pair_seams(before, after, covered, res.sample_rate, tops)
    return eventseams.summary(seams)


def aggregate(rows: list[dict]) -> dict:
    failed = [r for r in rows if "failed" in r]
    rows = [r for r in rows if "failed" not in r]
    if not rows:
        return {"scenes_failed": len(failed)}
    dists = [d["long_term_db_after"] for r in rows for d in r["devices"] if "long_term_db_after" in d]
    before = [d["long_term_db_before"] for r in rows for d in r["devices"] if "long_term_db_before" in d]
    shared = [d["long_term_db_after_shared_band"] for r in rows for d in r["devices"]
              if "long_term_db_after_shared_band" in d]
    lsd_b = [r["seams"]["median_frame_lsd_db"]["before"] for r in rows if r["seams"]["seams"]]
    lsd_a = [r["seams"]["median_frame_lsd_db"]["after"] for r in rows if r["seams"]["seams"]]
    lu_b = [r["seams"]["median_abs_loudness_jump_lu"]["before"] for r in rows if r["seams"]["seams"]]
    lu_a = [r["seams"]["median_abs_loudness_jump_lu"]["after"] for r in rows if r["seams"]["seams"]]
    med = lambda v: None if not v else round(float(np.median([x for x in v if x is not None])), 3)  # noqa: E731
    out = {"scenes": len(rows), "scenes_failed": len(failed),
           "max_abs_sync_error_change_ms": max(abs(d["sync_error_change_ms"]) for r in rows for d in r["devices"]
                                               if "sync_error_change_ms" in d),
           "max_sync_error_ms": max((r["max_sync_error_ms"] or np.inf) for r in rows),
           "devices_left_out": sum(len(r["left_out"]) for r in rows),
           "median_seam_lsd_db_before": med(lsd_b), "median_seam_lsd_db_after": med(lsd_a),
           "median_abs_loudness_jump_lu_before": med(lu_b), "median_abs_loudness_jump_lu_after": med(lu_a),
           "median_long_term_db_before": med(before), "median_long_term_db_after": med(dists),
           "share_long_term_within_1db": None if not dists else round(float(np.mean(np.array(dists) <= 1.0)), 3),
           "devices_compared": len(dists),
           "share_long_term_within_1db_shared_band": None if not shared else round(
               float(np.mean(np.array(shared) <= 1.0)), 3),
           "median_long_term_db_after_shared_band": med(shared), "devices_compared_shared_band": len(shared),
           "seconds_per_audio_minute": round(sum(r["elapsed_s"] for r in rows) /
                                             sum(r["audio_minutes"] for r in rows), 3)}
    sb = [r["shared_band_seams"]["median_frame_lsd_db"]["before"] for r in rows
          if r.get("shared_band_seams") and r["shared_band_seams"]["seams"]]
    sa = [r["shared_band_seams"]["median_frame_lsd_db"]["after"] for r in rows
          if r.get("shared_band_seams") and r["shared_band_seams"]["seams"]]
    out["median_shared_band_seam_lsd_db_before"], out["median_shared_band_seam_lsd_db_after"] = med(sb), med(sa)
    if sb:
        out["shared_band_seam_lsd_reduction_pct"] = reduction_pct(med(sb), med(sa))
    floors = [r["seam_lsd_floor_db"] for r in rows if r.get("seam_lsd_floor_db") is not None]
    out["median_seam_lsd_floor_db"] = med(floors)
    if out["median_seam_lsd_db_before"] and floors:
        out["seam_lsd_reduction_possible_pct"] = reduction_pct(out["median_seam_lsd_db_before"], med(floors))
    if out["median_seam_lsd_db_before"]:
        out["seam_lsd_reduction_pct"] = reduction_pct(out["median_seam_lsd_db_before"], out["median_seam_lsd_db_after"])
    return out


def scene_plan(n: int, seed: int, quick: bool) -> list[dict]:
    """Scene settings: alternating speech and music, 3 to 8 devices, 60 s, RT60 0.2-0.8 s (3 devices and RT60
    0.2-0.3 s with ``quick``: 30 s gave the reference 7.5 s of overlap, too little in a room)."""
    rng = np.random.default_rng(seed)
    plan = []
    for i in range(n):
        plan.append({"seed": int(rng.integers(0, 2**31 - 1)), "source": "speech" if i % 2 == 0 else "music",
                     "n_devices": 3 if quick else int(rng.integers(3, 9)), "seconds": 60.0,
                     # quick checks the runner: a drier room, where the synchronisation holds
                     "rt60_range": (0.2, 0.3) if quick else (0.2, 0.8)})
    return plan


def markdown(data: dict) -> str:
    lines = ["# Event mode on simulated events", "",
             f"Command: `{data['command']}` ({data['machine']['cpus']}-core CPU, {data['date']}).", "",
             "Figures through `micmatch.event(...)` (result object, event.json, stems). Speech: FSDD digits (band to "
             "4 kHz); music: synthetic chords of harmonic tones and noise-burst drums. Device 0 is the reference.",
             ""]
    for key, title in (("room", "In a room"), ("dry", "Without a room (same scenes)")):
        if not data.get(key):
            continue
        lines += [f"## {title}", "",
                  "| scene | source | RT60 drawn / measured (s) | devices | max sync error (ms) | seam LSD before -> "
                  "after (dB) | reduction | shared-band seam LSD before -> after (dB) | loudness jump after (LU) | long-term dist. before -> after (median dB) "
                  "| s per audio min |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for i, r in enumerate(data[key]["scenes"]):
            if "failed" in r:
                rt = "-" if r["rt60_s"] is None else f"{r['rt60_s']:.2f}"
                lines.append(f"| {i} | {r['source']} | {rt} | failed: {r['failed']} ||||||||")
                continue
            lsd, lu = r["seams"]["median_frame_lsd_db"], r["seams"]["median_abs_loudness_jump_lu"]
            lt_b = [d["long_term_db_before"] for d in r["devices"] if "long_term_db_before" in d]
            lt_a = [d["long_term_db_after"] for d in r["devices"] if "long_term_db_after" in d]
            sh = r.get("shared_band_seams")
            shared = "-" if not sh or not sh["seams"] else (f"{sh['median_frame_lsd_db']['before']} -> "
                                                            f"{sh['median_frame_lsd_db']['after']}")
            rt = "-" if r["rt60_s"] is None else f"{r['rt60_s']:.2f} / {r['rt60_measured_s']:.2f}"
            lines.append(f"| {i} | {r['source']} | {rt} | {len(r['devices'])} ({len(r['left_out'])} left out) | "
                         f"{r['max_sync_error_ms']} | {lsd['before']} -> {lsd['after']} | "
                         f"{r['seam_lsd_reduction_pct']}% | {shared} | {lu['after']} | "
                         f"{np.median(lt_b):.2f} -> {np.median(lt_a):.2f} | {r['seconds_per_audio_minute']} |")
        s = data[key]["summary"]
        if "max_sync_error_ms" not in s:
            lines += ["", f"No scene went through ({s.get('scenes_failed', 0)} failed).", ""]
            continue
        lines += ["", f"All: max sync error {s['max_sync_error_ms']} ms; median seam LSD "
                  f"{s['median_seam_lsd_db_before']} -> {s['median_seam_lsd_db_after']} dB "
                  f"({s.get('seam_lsd_reduction_pct')}% lower; target >= {SEAM_REDUCTION_TARGET:g}%; left after the "
                  f"best static EQ of each window and each frame's level: {s.get('median_seam_lsd_floor_db')} dB, at most "
                  f"{s.get('seam_lsd_reduction_possible_pct')}% lower), in the shared "
                  f"band {s['median_shared_band_seam_lsd_db_before']} -> {s['median_shared_band_seam_lsd_db_after']} "
                  f"dB ({s.get('shared_band_seam_lsd_reduction_pct')}% lower); median loudness "
                  f"jump {s['median_abs_loudness_jump_lu_before']} -> {s['median_abs_loudness_jump_lu_after']} LU "
                  f"(target <= {LOUDNESS_TARGET_LU}); long-term distance median {s['median_long_term_db_before']} -> "
                  f"{s['median_long_term_db_after']} dB, {100 * (s['share_long_term_within_1db'] or 0):.0f}% of "
                  f"{s['devices_compared']} devices within {LONG_TERM_TARGET_DB:g} dB (target >= "
                  f"{100 * LONG_TERM_SHARE:.0f}%), in the band the devices of each route share "
                  f"{100 * (s.get('share_long_term_within_1db_shared_band') or 0):.0f}% of "
                  f"{s.get('devices_compared_shared_band')} (median {s.get('median_long_term_db_after_shared_band')} dB)"
                  f"; {s['seconds_per_audio_minute']} s per minute of audio.", ""]
    if data.get("long") and "failed" in data["long"]:
        lines += ["## 10-minute event, drift up to 100 ppm (music, no room)", "",
                  f"Failed: {data['long']['failed']}", ""]
    elif data.get("long"):
        r = data["long"]
        lines += ["## 10-minute event, drift up to 100 ppm (music, no room)", "",
                  f"{len(r['devices'])} devices ({len(r['left_out'])} left out), {r['source']}: max sync error "
                  f"{r['max_sync_error_ms']} ms (target <= {SYNC_TARGET_MS:g} ms); per device "
                  + ", ".join(f"{d['name']} {d['drift_ppm']:+g} ppm: {d.get('sync_error_ms')} ms"
                              for d in r["devices"])
                  + f"; seam LSD {r['seams']['median_frame_lsd_db']['before']} -> "
                  f"{r['seams']['median_frame_lsd_db']['after']} dB; {r['elapsed_s']} s for {r['audio_minutes']} "
                  f"min of audio.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dry", action="store_true", help="also run every scene without a room")
    ap.add_argument("--no-long", action="store_true", help="skip the 10-minute event")
    ap.add_argument("--long-seconds", type=float, default=600.0, help="length of the long event (s)")
    ap.add_argument("--learned", action="store_true",
                    help="add event's learned correction (needs torch; slower): its seam and long-term figures")
    ap.add_argument("--no-room", action="store_true", help="skip the scenes in a room (with --dry: dry scenes only)")
    ap.add_argument("--quick", action="store_true", help="one 60 s scene of 3 devices in a drier room (RT60 0.2-0.3 s), no long event (a test)")
    ap.add_argument("--data", default=os.environ.get("MICMATCH_DATA", str(Path(__file__).resolve().parents[2] /
                                                                           "shared" / "data")))
    ap.add_argument("--out", default=str(RESULTS), help="folder for event.json and event.md")
    args = ap.parse_args(argv)
    data_dir = Path(args.data)
    if not (data_dir / "fsdd").is_dir() or not (data_dir / "micirp").is_dir():
        print(f"skipped: {data_dir} holds no fsdd/ and micirp/ (speech and microphone impulse responses); "
              f"give --data", file=sys.stderr)
        return 0
    n = 1 if args.quick else args.scenes
    plan = scene_plan(n, args.seed, args.quick)
    argv_text = " ".join(sys.argv[1:] if argv is None else argv)
    data = {"command": f"python benchmarks/bench_event.py {argv_text}".strip(), "seed": args.seed, "plan": plan}
    out = Path(args.out)
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        learned = None
        if args.learned:
            from micmatch.learn.event_residual import fit_event_devices as learned
        for key, room in (("room", True), ("dry", False)):
            if (key == "dry" and not args.dry) or (key == "room" and args.no_room):
                continue
            rows = []
            for i, p in enumerate(plan):
                scene = make_scene(p["seed"], seconds=p["seconds"], n_devices=p["n_devices"], source=p["source"],
                                   data=data_dir, room=room, rt60_range=p["rt60_range"])
                rows.append(run_scene(scene, Path(tmp) / f"{key}{i}", learned))
                print(f"{key} scene {i}: {json.dumps({k: v for k, v in rows[-1].items() if k != 'devices'})}",
                      flush=True)
            data[key] = {"scenes": rows, "summary": aggregate(rows)}
        if not (args.quick or args.no_long):
            _write(out, data)  # the scenes' figures are kept even if the long event breaks
            scene = make_scene(args.seed + 1000, seconds=args.long_seconds, n_devices=4, source="music", data=data_dir,
                               room=False, drifts=[0.0, 100.0, 40.0, -60.0], with_truth=False)
            data["long"] = run_scene(scene, Path(tmp) / "long", learned)
            print(f"long: {json.dumps({k: v for k, v in data['long'].items() if k != 'devices'})}", flush=True)
    data["total_s"] = round(time.perf_counter() - t_all, 1)
    _write(out, data)
    print(markdown(data))
    return 0


def _write(out: Path, data: dict) -> None:
    """``out/event.json`` and ``out/event.md`` from what has been measured so far."""
    data["machine"], data["date"] = machine(), time.strftime("%Y-%m-%d")
    out.mkdir(parents=True, exist_ok=True)
    (out / "event.json").write_text(json.dumps(data, indent=1, default=float) + "\n", encoding="utf-8")
    (out / "event.md").write_text(markdown(data).rstrip() + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
