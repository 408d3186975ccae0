"""Pool the device-chain mismatch runs of several data seeds into one table (``summary.md`` and ``summary.json``).

Each ``data-seed-N/results.json`` is one ``micmatch bench mismatch`` run (its own random device draw). A run's
score is the mean accuracy over its unseen devices. Per recipe: mean and sample standard deviation over every
(data seed, training seed) run; the baseline-to-ideal gap and the share of it closed, per data seed and then
averaged; and, for the converter recipes and the ideal, the paired difference to each augmentation recipe (same data seed and
training seed) against the two recipes' pooled standard deviation.

A variant folder (``LABEL=FOLDER``, holding its own ``data-seed-N/results.json`` for the same devices) adds its
recipes as ``recipe [LABEL]``, e.g. the converter recipe run again with another converter preset.

    python benchmarks/mismatch_chain/summarize.py [FOLDER] [--variant LABEL=FOLDER ...] [--compare R1,R2]
                                                  [--title TEXT]

``--compare`` names the recipes the converter recipes are compared with (default: the augmentations); the
adaptation track compares with its known-device recipes:

    python benchmarks/mismatch_chain/summarize.py benchmarks/mismatch_adapt --compare known-aug,sc,device-std \
        --title "Adaptation track: pooled over data seeds"
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
COMPARE = ("dir-aug", "synth-fr-aug", "freq-mixstyle")


def unseen_scores(doc: dict, recipe: str) -> list[float]:
    unseen = doc["plan"]["unseen"]
    return [float(np.mean([run[d]["accuracy"] for d in unseen])) for run in doc["runs"][recipe]]


def _load(folder: Path) -> dict:
    docs = {p.parent.name: json.loads(p.read_text()) for p in sorted(folder.glob("data-seed-*/results.json"))}
    if not docs:
        raise SystemExit(f"{folder}: no data-seed-*/results.json")
    return docs


def summarize(folder: Path, variants: dict[str, Path] | None = None, compare=COMPARE) -> dict:
    docs = _load(folder)
    for label, other in (variants or {}).items():
        for key, doc in _load(other).items():
            if key not in docs or doc["plan"] != docs[key]["plan"] or doc["seeds"] != docs[key]["seeds"]:
                raise SystemExit(f"{other / key}: not the devices and seeds of {folder / key}")
            docs[key]["runs"].update({f"{r} [{label}]": runs for r, runs in doc["runs"].items()})
    every = list(dict.fromkeys(r for d in docs.values() for r in d["runs"]))
    recipes = [r for r in every if all(r in d["runs"] for d in docs.values())]
    scores = {r: {k: unseen_scores(d, r) for k, d in docs.items()} for r in recipes}
    out: dict = {"data_seeds": list(docs), "recipes": {}, "gaps": {}, "comparisons": {}, "partial": {}}
    for k in docs:
        out["gaps"][k] = float(np.mean(scores["ideal"][k]) - np.mean(scores["baseline"][k]))
    for r in every:  # recipes run on some data seeds only: per data seed, against that seed's baseline and ideal
        if r in recipes:
            continue
        for k, d in docs.items():
            if r in d["runs"]:
                v = unseen_scores(d, r)
                out["partial"].setdefault(r, {})[k] = {
                    "mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                    "gap_closed": float((np.mean(v) - np.mean(scores["baseline"][k])) / out["gaps"][k])}
    for r in recipes:
        flat = [v for k in docs for v in scores[r][k]]
        closed = [(np.mean(scores[r][k]) - np.mean(scores["baseline"][k])) / out["gaps"][k] for k in docs]
        out["recipes"][r] = {"mean": float(np.mean(flat)), "std": float(np.std(flat, ddof=1)),
                             "per_data_seed": {k: float(np.mean(scores[r][k])) for k in docs},
                             "gap_closed": float(np.mean(closed)), "n_runs": len(flat)}
    for r in recipes:
        # the ideal (trained on labelled audio of every device) is compared too: the lead a converter at the
        # ideal's accuracy would have, the most a remedy without the test devices' labels can be expected to show
        if not (r.startswith("umc") or r == "ideal"):
            continue
        for other in compare:
            if other not in scores:
                continue
            diff = [a - b for k in docs for a, b in zip(scores[r][k], scores[other][k])]
            pooled = float(np.sqrt((out["recipes"][r]["std"] ** 2 + out["recipes"][other]["std"] ** 2) / 2))
            # Training-seed noise only: the two recipes' variances within each data seed, averaged (the std over
            # all runs also holds how much harder one device draw is than another, which both recipes share).
            within = float(np.sqrt(np.mean([(np.var(scores[r][k], ddof=1) + np.var(scores[other][k], ddof=1)) / 2
                                            for k in docs]))) if all(len(scores[r][k]) > 1 for k in docs) else None
            out["comparisons"][f"{r} vs {other}"] = {
                "difference": float(np.mean(diff)), "paired_std": float(np.std(diff, ddof=1)),
                "pooled_std": pooled, "in_pooled_stds": float(np.mean(diff) / pooled) if pooled else None,
                "within_seed_pooled_std": within,
                "in_within_seed_stds": float(np.mean(diff) / within) if within else None}
    return out


def to_markdown(s: dict, title: str = "Device-chain protocol: pooled over data seeds") -> str:
    seeds = s["data_seeds"]
    lines = [f"# {title}", "",
             "Unseen-device accuracy (%), mean ± sample std over every (data seed, training seed) run; gap closed "
             "= (recipe - baseline) / (ideal - baseline) per data seed, then averaged.", "",
             "| recipe | unseen acc (%) | " + " | ".join(seeds) + " | gap closed |",
             "|---|---|" + "---|" * len(seeds) + "---|"]
    for r, v in s["recipes"].items():
        per = " | ".join(f"{100 * v['per_data_seed'][k]:.1f}" for k in seeds)
        lines.append(f"| {r} | {100 * v['mean']:.1f} ± {100 * v['std']:.1f} | {per} | {100 * v['gap_closed']:.0f}% |")
    lines += ["", "Baseline-to-ideal gap per data seed (points): "
              + ", ".join(f"{k}: {100 * g:.1f}" for k, g in s["gaps"].items())
              + f"; mean {100 * np.mean(list(s['gaps'].values())):.1f}.", ""]
    if s["partial"]:
        lines += ["Recipes run on some data seeds only (mean ± std over training seeds; gap closed against that data "
                  "seed's baseline and ideal):", "", "| recipe | data seed | unseen acc (%) | gap closed |",
                  "|---|---|---|---|"]
        for r, per in s["partial"].items():
            for k, v in per.items():
                lines.append(f"| {r} | {k} | {100 * v['mean']:.1f} ± {100 * v['std']:.1f} | "
                             f"{100 * v['gap_closed']:.0f}% |")
        lines.append("")
    if s["comparisons"]:
        lines += ["Pooled std: of the two recipes over all runs; within data seed: the two recipes' variances over "
                  "training seeds inside each data seed, averaged (training noise only). The ideal's rows are the "
                  "lead a converter as accurate as the ideal would have.", "",
                  "| comparison | difference (points) | paired std | pooled std | difference / pooled std | "
                  "within-data-seed pooled std | difference / that |", "|---|---|---|---|---|---|---|"]
        for name, c in s["comparisons"].items():
            w = c.get("within_seed_pooled_std")
            lines.append(f"| {name} | {100 * c['difference']:+.1f} | {100 * c['paired_std']:.1f} | "
                         f"{100 * c['pooled_std']:.1f} | {c['in_pooled_stds']:+.1f} | "
                         f"{'-' if w is None else f'{100 * w:.1f}'} | "
                         f"{'-' if w is None else format(c['in_within_seed_stds'], '+.1f')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, nargs="?", default=HERE)
    ap.add_argument("--variant", action="append", default=[], help="LABEL=FOLDER")
    ap.add_argument("--compare", default=",".join(COMPARE), help="recipes the converter recipes are compared with")
    ap.add_argument("--title", default="Device-chain protocol: pooled over data seeds")
    args = ap.parse_args()
    folder = args.folder
    s = summarize(folder, {v.split("=", 1)[0]: Path(v.split("=", 1)[1]) for v in args.variant},
                  compare=tuple(args.compare.split(",")))
    (folder / "summary.json").write_text(json.dumps(s, indent=1) + "\n")
    (folder / "summary.md").write_text(to_markdown(s, args.title))
    print(to_markdown(s, args.title))


if __name__ == "__main__":
    main()
