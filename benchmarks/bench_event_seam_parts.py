"""What holds up the seam jump of event mode: the same simulated events with parts of the phone chains left out.

``bench_event.py`` finds the median seam frame LSD only 12% lower after correction on the events without a room
(target 40%). This runs its scenes (no room, same seeds) again with chain parts switched off in every device, the
rest of each scene unchanged (the parts are still drawn): the noise floor, the dynamics (compressor or automatic
gain control), both, and both plus the soft clipper (microphone response and band limits left). Per variant, the
median over scenes of ``event``'s own seam figure (100 Hz to 0.45 x the pair's lower rate), of the same figure in
the band both devices carry (below their low-pass corners, and 3.8 kHz for speech), and of the floor left after
the best static EQ of each cut's window (``bench_event.seam_floor``).

    PYTHONPATH=src python benchmarks/bench_event_seam_parts.py [--scenes 0,1] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine  # noqa: E402
from bench_event import reduction_pct, run_scene, scene_plan  # noqa: E402
from event_scenes import make_scene  # noqa: E402

VARIANTS = {"full chains": (), "no noise floor": ("noise",), "no dynamics": ("dynamics",),
            "no noise, no dynamics": ("noise", "dynamics"),
            "response and band limits only": ("noise", "dynamics", "clip_ceiling_db")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", default="0,1", help="indices into bench_event's scene plan (seed 0)")
    ap.add_argument("--data", default=os.environ.get("MICMATCH_DATA", str(Path(__file__).resolve().parents[2] /
                                                                           "shared" / "data")))
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    data_dir = Path(args.data)
    if not (data_dir / "fsdd").is_dir() or not (data_dir / "micirp").is_dir():
        print(f"skipped: {data_dir} holds no fsdd/ and micirp/; give --data", file=sys.stderr)
        return 0
    plan = scene_plan(6, 0, False)
    picks = [int(i) for i in args.scenes.split(",")]
    rows = []
    t0 = time.perf_counter()
    for name, off in VARIANTS.items():
        for i in picks:
            p = plan[i]
            scene = make_scene(p["seed"], seconds=p["seconds"], n_devices=p["n_devices"], source=p["source"],
                               data=data_dir, room=False, rt60_range=p["rt60_range"], parts_off=off)
            with tempfile.TemporaryDirectory() as tmp:
                r = run_scene(scene, Path(tmp))
            if "failed" in r:
                rows.append({"variant": name, "scene": i, "source": p["source"], "failed": r["failed"]})
                continue
            full = r["seams"]["median_frame_lsd_db"]
            shared = (r.get("shared_band_seams") or {}).get("median_frame_lsd_db") or {}
            rows.append({"variant": name, "scene": i, "source": p["source"], "devices": p["n_devices"],
                         "seam_before": full["before"], "seam_after": full["after"],
                         "seam_reduction_pct": reduction_pct(full["before"], full["after"]),
                         "shared_before": shared.get("before"), "shared_after": shared.get("after"),
                         "shared_reduction_pct": reduction_pct(shared.get("before"), shared.get("after")),
                         "floor": r["seam_lsd_floor_db"]})
            print(json.dumps(rows[-1]), flush=True)
    data = {"command": "python benchmarks/bench_event_seam_parts.py " + " ".join(sys.argv[1:] if argv is None
                                                                                  else argv),
            "rows": rows, "total_s": round(time.perf_counter() - t0, 1), "machine": machine(),
            "date": time.strftime("%Y-%m-%d")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "event_seam_parts.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    (out / "event_seam_parts.md").write_text(markdown(data), encoding="utf-8")
    print(markdown(data))
    return 0


def markdown(data: dict) -> str:
    lines = ["# Event mode: what holds up the seam jump", "",
             f"Command: `{data['command'].strip()}` ({data['machine']['cpus']}-core CPU, {data['date']}). Events "
             "without a room from `bench_event.py`'s plan, with chain parts left out of every device. Seam frame "
             "LSD (dB), median over the event's cuts: event's own band (100 Hz to 0.45 x the lower rate), the band "
             "both devices carry, and the floor left after the best static EQ of each window.", "",
             "| chains | scene | source | seam before -> after (dB) | reduction | shared band before -> after (dB) "
             "| reduction | floor (dB) |", "|---|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        if "failed" in r:
            lines.append(f"| {r['variant']} | {r['scene']} | {r['source']} | failed: {r['failed']} ||||")
            continue
        lines.append(f"| {r['variant']} | {r['scene']} | {r['source']} | {r['seam_before']} -> {r['seam_after']} | "
                     f"{r['seam_reduction_pct']}% | {r['shared_before']} -> {r['shared_after']} | "
                     f"{r['shared_reduction_pct']}% | {r['floor']} |")
    lines.append("")
    for name in VARIANTS:
        got = [r for r in data["rows"] if r["variant"] == name and "failed" not in r]
        full = [r["seam_reduction_pct"] for r in got if r["seam_reduction_pct"] is not None]
        shared = [r["shared_reduction_pct"] for r in got if r["shared_reduction_pct"] is not None]
        if full:
            lines.append(f"- {name}: median seam reduction {np.median(full):.1f}%"
                         + (f", in the shared band {np.median(shared):.1f}%" if shared else ""))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
