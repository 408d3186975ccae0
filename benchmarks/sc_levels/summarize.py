"""sc against the baseline on one machine: both sc levels, both tracks, data seeds 1-3 (``summary.md``, ``summary.json``).

Every ``results.json`` below ``generalize/data-seed-N/`` and ``adapt/data-seed-N/`` is one ``micmatch bench
mismatch`` run; a run of the recipe ``sc`` counts as ``sc [match]`` or ``sc [keep]`` by its ``sc_level``. A run's
score is the mean accuracy over its unseen devices. Per track and data seed: each recipe's mean over the training
seeds, and sc's paired difference to the baseline (same training seed); then the per-device change, the worst
device first, since one fragile device moves a whole run.

    python benchmarks/sc_levels/summarize.py [FOLDER]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TRACKS = ("generalize", "adapt")


def _label(recipe: str, doc: dict) -> str:
    return f"sc [{doc['config'].get('sc_level', 'match')}]" if recipe == "sc" else recipe


def load(folder: Path) -> dict:
    """``{(track, data seed): {label: {"seeds": [...], "unseen": [...], "devices": {name: [...]}}}}``."""
    out: dict = {}
    for track in TRACKS:
        for path in sorted((folder / track).glob("data-seed-*/**/results.json")):
            doc = json.loads(path.read_text())
            key = (track, int(doc["config"]["data_seed"]))
            unseen = doc["plan"]["unseen"]
            for recipe, runs in doc["runs"].items():
                label = _label(recipe, doc)
                if label in out.setdefault(key, {}):
                    raise SystemExit(f"{path}: {label} of {key} is in two runs")
                out[key][label] = {"seeds": doc["seeds"], "source": str(path.parent.relative_to(folder)),
                                   "unseen": [100.0 * float(np.mean([r[d]["accuracy"] for d in unseen])) for r in runs],
                                   "devices": {d: [100.0 * r[d]["accuracy"] for r in runs] for d in unseen}}
    return out


def summarize(folder: Path) -> dict:
    data = load(folder)
    rows = []
    for (track, seed), recipes in sorted(data.items()):
        base = recipes.get("baseline")
        row = {"track": track, "data_seed": seed,
               "mean": {k: round(float(np.mean(v["unseen"])), 2) for k, v in recipes.items()}, "vs_baseline": {}}
        for label, v in recipes.items():
            if base is None or label == "baseline" or v["seeds"] != base["seeds"]:
                continue
            diff = np.subtract(v["unseen"], base["unseen"])
            per_device = {d: round(float(np.mean(np.subtract(v["devices"][d], base["devices"][d]))), 1)
                          for d in base["devices"]}
            worst = min(per_device, key=per_device.get)
            row["vs_baseline"][label] = {"paired": [round(float(x), 2) for x in diff],
                                         "mean": round(float(np.mean(diff)), 2),
                                         "worst_device": worst, "worst_device_change": per_device[worst],
                                         "devices": per_device}
        rows.append(row)
    pooled = {}
    for label in LEVELS:
        diffs = [x for r in rows for x in r["vs_baseline"].get(label, {}).get("paired", [])]
        worse = [f"{r['track']} {r['data_seed']}" for r in rows
                 if label in r["vs_baseline"] and r["vs_baseline"][label]["mean"] < 0]
        if diffs:
            pooled[label] = {"runs": len(diffs), "mean_paired": round(float(np.mean(diffs)), 2),
                             "std_paired": round(float(np.std(diffs, ddof=1)), 2) if len(diffs) > 1 else None,
                             "below_baseline": worse}
    return {"rows": rows, "pooled": pooled}


LEVELS = ("sc [match]", "sc [keep]", "sc [auto]")


def markdown(summary: dict) -> str:
    levels = [lv for lv in LEVELS if any(lv in r["mean"] for r in summary["rows"])]
    lines = ["# sc against the baseline: the level matched, kept, or kept for devices with a noise floor (auto)", "",
             "Unseen-device accuracy (%), mean over the training seeds, and in brackets sc's paired difference to "
             "the baseline (same training seed), mean over the training seeds.", "",
             "| track | data seed | baseline | " + " | ".join(levels) + " |", "|---" * (3 + len(levels)) + "|"]
    for r in summary["rows"]:
        cells = [r["track"], str(r["data_seed"]), str(r["mean"].get("baseline", "-"))]
        for label in levels:
            v = r["vs_baseline"].get(label)
            cells.append("-" if label not in r["mean"] else f"{r['mean'][label]}" + (
                "" if v is None else f" ({v['mean']:+.2f})"))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Per training seed, and the unseen device each level moved most (mean change over the training "
              "seeds):", "", "| track | data seed | " + " | ".join(f"{lv} - baseline | worst device" for lv in levels)
              + " |", "|---" * (2 + 2 * len(levels)) + "|"]
    for r in summary["rows"]:
        cells = [r["track"], str(r["data_seed"])]
        for label in levels:
            v = r["vs_baseline"].get(label)
            cells += ["-", "-"] if v is None else [" / ".join(f"{x:+.1f}" for x in v["paired"]),
                                                   f"{v['worst_device']} {v['worst_device_change']:+.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for label, p in summary["pooled"].items():
        lines.append(f"- {label}: mean paired difference {p['mean_paired']:+.2f} points over {p['runs']} runs "
                     f"(std {p['std_paired']}); below the baseline on: {', '.join(p['below_baseline']) or 'none'}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0]) if argv else HERE
    summary = summarize(folder)
    (folder / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (folder / "summary.md").write_text(markdown(summary))
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
